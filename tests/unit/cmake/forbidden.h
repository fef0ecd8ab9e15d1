// A file of a library that links only qiao_base: the layering check must refuse this include.
#pragma once
#include "base/error.h"
#include "storage/volume_driver.h"
