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

}  // namespace qiao
