/* Tests of the atomic-output helpers of core/util.h: a committed file has
 * the whole content, an aborted one leaves nothing, and a target that is
 * not a regular file (a directory, a FIFO; as root rename() would replace
 * even /dev/null) is refused with the path named, leaving no temporary. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "testutil.h"

/* Entries of dir whose name starts with prefix. */
static int count_prefixed(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) n++;
    closedir(d);
    return n;
}

static void test_commit_and_abort(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s", ew_test_tmpfile("atomic.txt"));
    remove(path);
    FILE *f;
    char *tmp;
    assert_ok(ew_atomic_open(path, &f, &tmp));
    fputs("hello\n", f);
    assert_ok(ew_atomic_commit(f, tmp, path));
    f = fopen(path, "r");
    assert_non_null(f);
    char buf[16] = {0};
    assert_non_null(fgets(buf, sizeof buf, f));
    fclose(f);
    assert_string_equal(buf, "hello\n");
    /* abort: the old content stays, no temporary left */
    assert_ok(ew_atomic_open(path, &f, &tmp));
    fputs("partial", f);
    ew_atomic_abort(f, tmp);
    f = fopen(path, "r");
    assert_non_null(fgets(buf, sizeof buf, f));
    fclose(f);
    assert_string_equal(buf, "hello\n");
    char dir[512];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = '\0';
    assert_int_equal(count_prefixed(dir, "atomic.txt.tmp"), 0);
    remove(path);
}

static void test_refuse_non_regular(void **state)
{
    (void)state;
    char dpath[512], fpath[512];
    snprintf(dpath, sizeof dpath, "%s", ew_test_tmpfile("a_directory"));
    snprintf(fpath, sizeof fpath, "%s", ew_test_tmpfile("a_fifo"));
    rmdir(dpath);
    remove(fpath);
    assert_int_equal(mkdir(dpath, 0700), 0);
    assert_int_equal(mkfifo(fpath, 0600), 0);
    const char *targets[2] = {dpath, fpath};
    for (int k = 0; k < 2; k++) {
        FILE *f;
        char *tmp;
        assert_ok(ew_atomic_open(targets[k], &f, &tmp));
        fputs("x", f);
        assert_int_equal(ew_atomic_commit(f, tmp, targets[k]), EW_ERR_IO);
        assert_non_null(strstr(ew_error_message(), targets[k]));
        assert_non_null(strstr(ew_error_message(), "not a regular file"));
        struct stat sb;
        assert_int_equal(stat(targets[k], &sb), 0);
        assert_true(k == 0 ? S_ISDIR(sb.st_mode) : S_ISFIFO(sb.st_mode));
    }
    char dir[512];
    snprintf(dir, sizeof dir, "%s", dpath);
    *strrchr(dir, '/') = '\0';
    assert_int_equal(count_prefixed(dir, "a_directory.tmp"), 0);
    assert_int_equal(count_prefixed(dir, "a_fifo.tmp"), 0);
    rmdir(dpath);
    remove(fpath);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_commit_and_abort),
                                       cmocka_unit_test(test_refuse_non_regular)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
