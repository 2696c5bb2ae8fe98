/* ewald core: logging, progress, timers, atomic file output. */
#include "core/util.h"

#include "core/mem.h"

#include <errno.h>
#include <sys/stat.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static ew_log_level_t log_level = EW_LOG_INFO;

void ew_log_set_level(ew_log_level_t level) { log_level = level; }
ew_log_level_t ew_log_get_level(void) { return log_level; }

void ew_log(ew_log_level_t level, const char *fmt, ...)
{
    if (level > log_level) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *tag = level == EW_LOG_ERROR ? "error: " : level == EW_LOG_WARN ? "warning: " : "";
    fprintf(stderr, "ewald: %s%s\n", tag, msg);
}

double ew_time_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

struct ew_progress {
    char label[64];
    char status[96];
    uint64_t total;
    uint64_t done;      /* updated atomically */
    double t0;          /* start time */
    double t_last;      /* last draw */
    int tty;            /* draw in place */
    int enabled;
};

ew_progress_t *ew_progress_start(const char *label, uint64_t total)
{
    ew_progress_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    p->total = total;
    p->t0 = p->t_last = ew_time_now();
    p->tty = isatty(STDERR_FILENO);
    p->enabled = log_level >= EW_LOG_INFO;
    return p;
}

static void fmt_seconds(char *buf, size_t n, double s)
{
    if (!(s >= 0.0) || s > 1e7) {
        snprintf(buf, n, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else
        snprintf(buf, n, "%02ld:%02ld", t / 60, t % 60);
}

static void progress_draw(ew_progress_t *p, double now, int final)
{
    uint64_t done = p->done;
    double el = now - p->t0;
    double rate = el > 0 ? (double)done / el : 0.0;
    double frac = p->total ? (double)done / (double)p->total : 0.0;
    if (frac > 1.0) frac = 1.0;
    char eta[32], elapsed[32];
    fmt_seconds(elapsed, sizeof elapsed, el);
    fmt_seconds(eta, sizeof eta, rate > 0 ? (double)(p->total - (done < p->total ? done : p->total)) / rate : -1);
    if (p->tty) {
        char bar[31];
        int fill = (int)(frac * 30.0);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        fprintf(stderr, "\r%s [%s] %5.1f%% %llu/%llu %.3g/s %s<%s %s\033[K", p->label, bar, 100.0 * frac,
                (unsigned long long)done, (unsigned long long)p->total, rate, elapsed, final ? "" : eta,
                p->status);
        if (final) fputc('\n', stderr);
    } else {
        fprintf(stderr, "ewald: %s %5.1f%% (%llu/%llu) %.3g/s elapsed %s%s%s %s\n", p->label, 100.0 * frac,
                (unsigned long long)done, (unsigned long long)p->total, rate, elapsed, final ? "" : " eta ",
                final ? "" : eta, p->status);
    }
    fflush(stderr);
}

void ew_progress_add(ew_progress_t *p, uint64_t n)
{
    if (!p) return;
    uint64_t done;
#pragma omp atomic capture
    done = p->done += n;
    (void)done;
    if (!p->enabled) return;
    double now = ew_time_now();
    double every = p->tty ? 0.2 : 5.0;
    int draw = 0;
#pragma omp critical(ew_progress_draw)
    {
        if (now - p->t_last >= every) {
            p->t_last = now;
            draw = 1;
        }
        if (draw) progress_draw(p, now, 0);
    }
}

void ew_progress_status(ew_progress_t *p, const char *fmt, ...)
{
    if (!p) return;
    va_list ap;
    va_start(ap, fmt);
#pragma omp critical(ew_progress_draw)
    vsnprintf(p->status, sizeof p->status, fmt, ap);
    va_end(ap);
}

void ew_progress_finish(ew_progress_t *p)
{
    if (!p) return;
    if (p->enabled) progress_draw(p, ew_time_now(), 1);
    free(p);
}

void ew_progress_abort(ew_progress_t *p)
{
    if (!p) return;
    if (p->enabled && p->tty) fputs("\r\033[K", stderr); /* clear the half-drawn bar */
    free(p);
}

ew_status_t ew_file_read_all(const char *path, char **out, size_t *n_out)
{
    FILE *f = fopen(path, "rb");
    if (!f) return ew_fail(EW_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (ew_grow((void **)&buf, &cap, n + 65537, 1) != EW_OK) {
            free(buf);
            fclose(f);
            return ew_fail_context(EW_ERR_NOMEM, "%s", path);
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return ew_fail(EW_ERR_IO, "%s: read error", path);
    }
    buf[n] = '\0';
    *out = buf;
    *n_out = n;
    return EW_OK;
}

char *ew_temp_name(const char *path)
{
    size_t n = strlen(path) + 32;
    char *t = malloc(n);
    if (!t) {
        ew_fail(EW_ERR_NOMEM, "out of memory");
        return NULL;
    }
    /* pid + a per-process counter: two writers to one path never collide. */
    static unsigned long counter;
    unsigned long k;
#pragma omp atomic capture
    k = counter++;
    snprintf(t, n, "%s.tmp.%ld.%lu", path, (long)getpid(), k);
    return t;
}

ew_status_t ew_commit_rename(char *tmpname, const char *path)
{
    /* never replace a device, directory, FIFO or socket: rename() would
     * (as root even /dev/null) */
    struct stat sb;
    if (lstat(path, &sb) == 0 && !S_ISREG(sb.st_mode) && !S_ISLNK(sb.st_mode)) {
        remove(tmpname);
        free(tmpname);
        return ew_fail(EW_ERR_IO, "%s: exists and is not a regular file; refusing to replace it", path);
    }
    if (rename(tmpname, path) != 0) {
        int e = errno;
        remove(tmpname);
        free(tmpname);
        return ew_fail(EW_ERR_IO, "%s: cannot rename temporary file into place: %s", path, strerror(e));
    }
    free(tmpname);
    return EW_OK;
}

ew_status_t ew_atomic_open(const char *path, FILE **fp, char **tmpname)
{
    *fp = NULL;
    *tmpname = ew_temp_name(path);
    if (!*tmpname) return EW_ERR_NOMEM;
    *fp = fopen(*tmpname, "wb");
    if (!*fp) {
        int e = errno;
        free(*tmpname);
        *tmpname = NULL;
        return ew_fail(EW_ERR_IO, "%s: cannot create: %s", path, strerror(e));
    }
    return EW_OK;
}

ew_status_t ew_atomic_commit(FILE *fp, char *tmpname, const char *path)
{
    int bad = ferror(fp);
    if (fclose(fp) != 0) bad = 1;
    if (bad) {
        int e = errno;
        remove(tmpname);
        free(tmpname);
        return ew_fail(EW_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    return ew_commit_rename(tmpname, path);
}

void ew_atomic_abort(FILE *fp, char *tmpname)
{
    if (fp) fclose(fp);
    if (tmpname) {
        remove(tmpname);
        free(tmpname);
    }
}
