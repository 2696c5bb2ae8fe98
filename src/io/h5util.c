/* ewald io: checked HDF5 helpers (see h5util.h). */
#include "io/h5util.h"

#include <stdlib.h>
#include <string.h>

void ew_h5_quiet(void)
{
    /* Idempotent and cheap; HDF5 keeps this per library instance. */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

ew_status_t ew_h5_open_read(const char *path, hid_t *file)
{
    ew_h5_quiet();
    *file = H5I_INVALID_HID;
    htri_t is = H5Fis_hdf5(path);
    if (is < 0) return ew_fail(EW_ERR_IO, "%s: cannot open (missing or unreadable)", path);
    if (is == 0) return ew_fail(EW_ERR_FORMAT, "%s: not an HDF5 file", path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return ew_fail(EW_ERR_FORMAT, "%s: HDF5 open failed (truncated or corrupt file?)", path);
    *file = f;
    return EW_OK;
}

ew_status_t ew_h5_create(const char *path, hid_t *file)
{
    ew_h5_quiet();
    *file = H5I_INVALID_HID;
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return ew_fail(EW_ERR_IO, "%s: cannot create HDF5 file", path);
    *file = f;
    return EW_OK;
}

int ew_h5_exists(hid_t loc, const char *path)
{
    /* H5Lexists fails on a missing intermediate group: walk component by component. */
    size_t n = strlen(path);
    char *buf = malloc(n + 1);
    if (!buf) return 0;
    memcpy(buf, path, n + 1);
    int ok = 1;
    for (size_t i = 1; i <= n && ok; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (H5Lexists(loc, buf, H5P_DEFAULT) <= 0) ok = 0;
            else if (H5Oexists_by_name(loc, buf, H5P_DEFAULT) <= 0) ok = 0;
            buf[i] = c;
        }
    }
    free(buf);
    return ok;
}

ew_status_t ew_h5_create_dataset(hid_t loc, const char *fname, const char *path, hid_t file_type, int rank,
                                 const hsize_t *dims, const hsize_t *maxdims, const hsize_t *chunk, int deflate,
                                 hid_t mem_type, const void *data, const char *units, hid_t *dset_out)
{
    if (dset_out) *dset_out = H5I_INVALID_HID;
    hid_t space = H5I_INVALID_HID, lcpl = H5I_INVALID_HID, dcpl = H5I_INVALID_HID, d = H5I_INVALID_HID;
    ew_status_t st = EW_OK;
    space = H5Screate_simple(rank, dims, maxdims);
    lcpl = H5Pcreate(H5P_LINK_CREATE);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (space < 0 || lcpl < 0 || dcpl < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0) {
        st = ew_fail(EW_ERR_IO, "%s: dataset %s: cannot set up dataspace/properties", fname, path);
        goto done;
    }
    if (chunk) {
        if (H5Pset_chunk(dcpl, rank, chunk) < 0) {
            st = ew_fail(EW_ERR_IO, "%s: dataset %s: cannot set chunking", fname, path);
            goto done;
        }
        if (deflate > 0) {
            if (H5Zfilter_avail(H5Z_FILTER_DEFLATE) <= 0) {
                st = ew_fail(EW_ERR_UNSUPPORTED, "%s: dataset %s: this HDF5 has no deflate filter", fname, path);
                goto done;
            }
            if (H5Pset_deflate(dcpl, (unsigned)(deflate > 9 ? 9 : deflate)) < 0) {
                st = ew_fail(EW_ERR_IO, "%s: dataset %s: cannot set deflate", fname, path);
                goto done;
            }
        }
    }
    d = H5Dcreate2(loc, path, file_type, space, lcpl, dcpl, H5P_DEFAULT);
    if (d < 0) {
        st = ew_fail(EW_ERR_IO, "%s: dataset %s: cannot create", fname, path);
        goto done;
    }
    if (data && H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        st = ew_fail(EW_ERR_IO, "%s: dataset %s: write failed", fname, path);
        goto done;
    }
    if (units) st = ew_h5_attr_set_str(d, fname, path, "units", units);
done:
    if (space >= 0) H5Sclose(space);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (d >= 0) {
        if (st == EW_OK && dset_out) *dset_out = d;
        else H5Dclose(d);
    }
    return st;
}

ew_status_t ew_h5_dataset_shape(hid_t loc, const char *fname, const char *path, int *rank, hsize_t dims[8],
                                H5T_class_t *cls)
{
    if (!ew_h5_exists(loc, path)) return ew_fail(EW_ERR_FORMAT, "%s: dataset %s is missing", fname, path);
    hid_t d = H5Dopen2(loc, path, H5P_DEFAULT);
    if (d < 0) return ew_fail(EW_ERR_FORMAT, "%s: %s is not a readable dataset", fname, path);
    ew_status_t st = EW_OK;
    hid_t space = H5Dget_space(d), type = H5Dget_type(d);
    int r = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (space < 0 || type < 0 || r < 0) {
        st = ew_fail(EW_ERR_FORMAT, "%s: dataset %s: cannot read its shape/type", fname, path);
    } else if (r > 8) {
        st = ew_fail(EW_ERR_FORMAT, "%s: dataset %s: rank %d is too large", fname, path, r);
    } else {
        *rank = r;
        if (r > 0 && H5Sget_simple_extent_dims(space, dims, NULL) < 0)
            st = ew_fail(EW_ERR_FORMAT, "%s: dataset %s: cannot read its dimensions", fname, path);
        if (cls) *cls = H5Tget_class(type);
    }
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    H5Dclose(d);
    return st;
}

ew_status_t ew_h5_read_numeric(hid_t loc, const char *fname, const char *path, hid_t mem_type, int rank,
                               const hsize_t *want, void *buf, size_t count_max)
{
    int r = 0;
    hsize_t dims[8] = {0};
    H5T_class_t cls = H5T_NO_CLASS;
    EW_TRY(ew_h5_dataset_shape(loc, fname, path, &r, dims, &cls));
    if (cls != H5T_INTEGER && cls != H5T_FLOAT)
        return ew_fail(EW_ERR_FORMAT, "%s: dataset %s: type is not numeric (integer or float)", fname, path);
    if (r != rank) return ew_fail(EW_ERR_FORMAT, "%s: dataset %s: rank %d, expected %d", fname, path, r, rank);
    size_t count = 1;
    for (int k = 0; k < r; k++) {
        if (want && want[k] && dims[k] != want[k])
            return ew_fail(EW_ERR_FORMAT, "%s: dataset %s: dimension %d is %llu, expected %llu", fname, path, k,
                           (unsigned long long)dims[k], (unsigned long long)want[k]);
        if (ew_size_mul(count, (size_t)dims[k], &count) != EW_OK)
            return ew_fail(EW_ERR_FORMAT, "%s: dataset %s: size overflows", fname, path);
    }
    if (count > count_max)
        return ew_fail(EW_ERR_FORMAT, "%s: dataset %s: %zu elements, more than the %zu expected", fname, path, count,
                       count_max);
    hid_t d = H5Dopen2(loc, path, H5P_DEFAULT);
    if (d < 0) return ew_fail(EW_ERR_FORMAT, "%s: dataset %s: cannot open", fname, path);
    ew_status_t st = EW_OK;
    if (count > 0 && H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        st = ew_fail(EW_ERR_FORMAT, "%s: dataset %s: read failed (corrupt or truncated file?)", fname, path);
    H5Dclose(d);
    return st;
}

ew_status_t ew_h5_rows_io(hid_t dset, const char *fname, const char *path, int write, hid_t mem_type,
                          hsize_t start, hsize_t count, void *buf)
{
    if (count == 0) return EW_OK;
    hid_t fspace = H5Dget_space(dset);
    if (fspace < 0) return ew_fail(EW_ERR_IO, "%s: dataset %s: cannot get dataspace", fname, path);
    ew_status_t st = EW_OK;
    hid_t mspace = H5I_INVALID_HID;
    hsize_t dims[8], off[8] = {0}, cnt[8];
    int r = H5Sget_simple_extent_ndims(fspace);
    if (r < 1 || r > 8 || H5Sget_simple_extent_dims(fspace, dims, NULL) < 0) {
        st = ew_fail(EW_ERR_FORMAT, "%s: dataset %s: bad dataspace", fname, path);
        goto done;
    }
    if (start + count > dims[0] || start + count < start) {
        st = ew_fail(EW_ERR_RANGE, "%s: dataset %s: rows [%llu, %llu) outside its %llu rows", fname, path,
                     (unsigned long long)start, (unsigned long long)(start + count), (unsigned long long)dims[0]);
        goto done;
    }
    for (int k = 0; k < r; k++) cnt[k] = dims[k];
    off[0] = start;
    cnt[0] = count;
    mspace = H5Screate_simple(r, cnt, NULL);
    if (mspace < 0 || H5Sselect_hyperslab(fspace, H5S_SELECT_SET, off, NULL, cnt, NULL) < 0) {
        st = ew_fail(EW_ERR_IO, "%s: dataset %s: cannot select rows", fname, path);
        goto done;
    }
    herr_t e = write ? H5Dwrite(dset, mem_type, mspace, fspace, H5P_DEFAULT, buf)
                     : H5Dread(dset, mem_type, mspace, fspace, H5P_DEFAULT, buf);
    if (e < 0)
        st = ew_fail(write ? EW_ERR_IO : EW_ERR_FORMAT, "%s: dataset %s: %s of rows [%llu, %llu) failed", fname, path,
                     write ? "write" : "read", (unsigned long long)start, (unsigned long long)(start + count));
done:
    if (mspace >= 0) H5Sclose(mspace);
    H5Sclose(fspace);
    return st;
}

ew_status_t ew_h5_attr_set_str(hid_t obj, const char *fname, const char *objname, const char *name, const char *val)
{
    hid_t type = H5Tcopy(H5T_C_S1), space = H5Screate(H5S_SCALAR), a = H5I_INVALID_HID;
    ew_status_t st = EW_OK;
    if (type < 0 || space < 0 || H5Tset_size(type, H5T_VARIABLE) < 0 || H5Tset_cset(type, H5T_CSET_UTF8) < 0) {
        st = ew_fail(EW_ERR_IO, "%s: %s: cannot make string type for attribute %s", fname, objname, name);
        goto done;
    }
    if (H5Aexists(obj, name) > 0 && H5Adelete(obj, name) < 0) {
        st = ew_fail(EW_ERR_IO, "%s: %s: cannot replace attribute %s", fname, objname, name);
        goto done;
    }
    a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    const char *v = val ? val : "";
    if (a < 0 || H5Awrite(a, type, &v) < 0) st = ew_fail(EW_ERR_IO, "%s: %s: cannot write attribute %s", fname, objname, name);
done:
    if (a >= 0) H5Aclose(a);
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    return st;
}

ew_status_t ew_h5_attr_get_str(hid_t obj, const char *fname, const char *objname, const char *name, char **val)
{
    *val = NULL;
    if (H5Aexists(obj, name) <= 0)
        return ew_fail(EW_ERR_FORMAT, "%s: %s: attribute %s is missing", fname, objname, name);
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return ew_fail(EW_ERR_FORMAT, "%s: %s: cannot open attribute %s", fname, objname, name);
    ew_status_t st = EW_OK;
    hid_t ftype = H5Aget_type(a), space = H5Aget_space(a), mtype = H5I_INVALID_HID;
    if (ftype < 0 || space < 0 || H5Tget_class(ftype) != H5T_STRING || H5Sget_simple_extent_npoints(space) != 1) {
        st = ew_fail(EW_ERR_FORMAT, "%s: %s: attribute %s is not a single string", fname, objname, name);
        goto done;
    }
    htri_t var = H5Tis_variable_str(ftype);
    mtype = H5Tcopy(H5T_C_S1);
    H5T_cset_t cset = H5Tget_cset(ftype); /* HDF5 does not convert between ASCII and UTF-8 */
    if (var < 0 || mtype < 0 || cset < 0 || H5Tset_cset(mtype, cset) < 0) {
        st = ew_fail(EW_ERR_FORMAT, "%s: %s: attribute %s: bad string type", fname, objname, name);
        goto done;
    }
    if (var) {
        char *s = NULL;
        if (H5Tset_size(mtype, H5T_VARIABLE) < 0 || H5Aread(a, mtype, &s) < 0) {
            st = ew_fail(EW_ERR_FORMAT, "%s: %s: cannot read attribute %s", fname, objname, name);
            goto done;
        }
        *val = ew_strdup(s ? s : "");
        if (s) H5free_memory(s);
    } else {
        size_t n = H5Tget_size(ftype);
        char *s = (n > 0 && n < (1u << 24)) ? calloc(n + 1, 1) : NULL;
        if (!s || H5Tset_size(mtype, n + 1) < 0 || H5Aread(a, mtype, s) < 0) {
            free(s);
            st = ew_fail(EW_ERR_FORMAT, "%s: %s: cannot read attribute %s", fname, objname, name);
            goto done;
        }
        *val = s;
    }
    if (!*val) st = EW_ERR_NOMEM;
done:
    if (mtype >= 0) H5Tclose(mtype);
    if (space >= 0) H5Sclose(space);
    if (ftype >= 0) H5Tclose(ftype);
    H5Aclose(a);
    return st;
}

static ew_status_t attr_set_num(hid_t obj, const char *fname, const char *objname, const char *name, hid_t ftype,
                                hid_t mtype, const void *v, int n)
{
    hsize_t dim = (hsize_t)n;
    hid_t space = n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dim, NULL);
    ew_status_t st = EW_OK;
    hid_t a = H5I_INVALID_HID;
    if (space < 0) {
        st = ew_fail(EW_ERR_IO, "%s: %s: cannot make dataspace for attribute %s", fname, objname, name);
        goto done;
    }
    if (H5Aexists(obj, name) > 0 && H5Adelete(obj, name) < 0) {
        st = ew_fail(EW_ERR_IO, "%s: %s: cannot replace attribute %s", fname, objname, name);
        goto done;
    }
    a = H5Acreate2(obj, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, mtype, v) < 0) st = ew_fail(EW_ERR_IO, "%s: %s: cannot write attribute %s", fname, objname, name);
done:
    if (a >= 0) H5Aclose(a);
    if (space >= 0) H5Sclose(space);
    return st;
}

static ew_status_t attr_get_num(hid_t obj, const char *fname, const char *objname, const char *name, hid_t mtype,
                                void *v, int n)
{
    if (H5Aexists(obj, name) <= 0)
        return ew_fail(EW_ERR_FORMAT, "%s: %s: attribute %s is missing", fname, objname, name);
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return ew_fail(EW_ERR_FORMAT, "%s: %s: cannot open attribute %s", fname, objname, name);
    ew_status_t st = EW_OK;
    hid_t type = H5Aget_type(a), space = H5Aget_space(a);
    H5T_class_t cls = type >= 0 ? H5Tget_class(type) : H5T_NO_CLASS;
    hssize_t np = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    if (cls != H5T_INTEGER && cls != H5T_FLOAT)
        st = ew_fail(EW_ERR_FORMAT, "%s: %s: attribute %s is not numeric", fname, objname, name);
    else if (np != n)
        st = ew_fail(EW_ERR_FORMAT, "%s: %s: attribute %s has %lld values, expected %d", fname, objname, name,
                     (long long)np, n);
    else if (H5Aread(a, mtype, v) < 0)
        st = ew_fail(EW_ERR_FORMAT, "%s: %s: cannot read attribute %s", fname, objname, name);
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    H5Aclose(a);
    return st;
}

ew_status_t ew_h5_attr_set_f64(hid_t obj, const char *fname, const char *objname, const char *name, const double *v,
                               int n)
{
    return attr_set_num(obj, fname, objname, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, v, n);
}

ew_status_t ew_h5_attr_get_f64(hid_t obj, const char *fname, const char *objname, const char *name, double *v, int n)
{
    return attr_get_num(obj, fname, objname, name, H5T_NATIVE_DOUBLE, v, n);
}

ew_status_t ew_h5_attr_set_u64(hid_t obj, const char *fname, const char *objname, const char *name, uint64_t v)
{
    return attr_set_num(obj, fname, objname, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &v, 1);
}

ew_status_t ew_h5_attr_get_u64(hid_t obj, const char *fname, const char *objname, const char *name, uint64_t *v)
{
    return attr_get_num(obj, fname, objname, name, H5T_NATIVE_UINT64, v, 1);
}

ew_status_t ew_h5_write_scalar(hid_t loc, const char *fname, const char *path, double v, const char *units)
{
    hid_t space = H5Screate(H5S_SCALAR), lcpl = H5Pcreate(H5P_LINK_CREATE), d = H5I_INVALID_HID;
    ew_status_t st = EW_OK;
    if (space < 0 || lcpl < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0) {
        st = ew_fail(EW_ERR_IO, "%s: dataset %s: cannot set up", fname, path);
        goto done;
    }
    d = H5Dcreate2(loc, path, H5T_IEEE_F64LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (d < 0 || H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) < 0) {
        st = ew_fail(EW_ERR_IO, "%s: dataset %s: cannot write", fname, path);
        goto done;
    }
    if (units) st = ew_h5_attr_set_str(d, fname, path, "units", units);
done:
    if (d >= 0) H5Dclose(d);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (space >= 0) H5Sclose(space);
    return st;
}

ew_status_t ew_h5_read_scalar(hid_t loc, const char *fname, const char *path, double *v)
{
    int r = 0;
    hsize_t dims[8];
    H5T_class_t cls;
    EW_TRY(ew_h5_dataset_shape(loc, fname, path, &r, dims, &cls));
    size_t n = 1;
    for (int k = 0; k < r; k++) n *= (size_t)dims[k];
    if (n != 1) return ew_fail(EW_ERR_FORMAT, "%s: dataset %s: expected a single value, found %zu", fname, path, n);
    if (cls != H5T_INTEGER && cls != H5T_FLOAT)
        return ew_fail(EW_ERR_FORMAT, "%s: dataset %s: type is not numeric", fname, path);
    hid_t d = H5Dopen2(loc, path, H5P_DEFAULT);
    if (d < 0) return ew_fail(EW_ERR_FORMAT, "%s: dataset %s: cannot open", fname, path);
    ew_status_t st = EW_OK;
    if (H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0)
        st = ew_fail(EW_ERR_FORMAT, "%s: dataset %s: read failed", fname, path);
    H5Dclose(d);
    return st;
}
