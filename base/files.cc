#include "base/files.h"

#include <fstream>
#include <sstream>

namespace qiao {

std::string readTextFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace qiao
