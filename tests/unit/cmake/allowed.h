// A file of a library that links qiao_base: its includes pass the layering check ("tests/" and
// system headers belong to no library).
#pragma once
#include <string>
#include "base/error.h"
#include "tests/unit/cmake/forbidden.h"
