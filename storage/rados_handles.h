// Owners of librados handles, for the code of this folder only (librados types stay out of
// the public headers).
#pragma once

#include <rados/librados.h>

namespace qiao {

struct IoCtx {
  rados_ioctx_t io = nullptr;
  IoCtx() = default;
  IoCtx(const IoCtx&) = delete;
  IoCtx& operator=(const IoCtx&) = delete;
  ~IoCtx() {
    if (io != nullptr) rados_ioctx_destroy(io);
  }
};

struct WriteOp {
  rados_write_op_t op = rados_create_write_op();
  WriteOp() = default;
  WriteOp(const WriteOp&) = delete;
  WriteOp& operator=(const WriteOp&) = delete;
  ~WriteOp() { rados_release_write_op(op); }
};

struct ReadOp {
  rados_read_op_t op = rados_create_read_op();
  ReadOp() = default;
  ReadOp(const ReadOp&) = delete;
  ReadOp& operator=(const ReadOp&) = delete;
  ~ReadOp() { rados_release_read_op(op); }
};

// An omap iterator: librados allocates it when the read is added to its op, so it is freed
// whether or not the op ran.
struct OmapIter {
  rados_omap_iter_t it = nullptr;
  OmapIter() = default;
  OmapIter(const OmapIter&) = delete;
  OmapIter& operator=(const OmapIter&) = delete;
  ~OmapIter() {
    if (it != nullptr) rados_omap_get_end(it);
  }
};

struct ListCtx {
  rados_list_ctx_t ctx = nullptr;
  ListCtx() = default;
  ListCtx(const ListCtx&) = delete;
  ListCtx& operator=(const ListCtx&) = delete;
  ~ListCtx() {
    if (ctx != nullptr) rados_nobjects_list_close(ctx);
  }
};

}  // namespace qiao
