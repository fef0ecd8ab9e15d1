// XmlWriter: builds XML documents element by element. Every attribute value and text is
// escaped; characters XML 1.0 cannot carry (control characters, invalid UTF-8) become U+FFFD,
// so the output is well-formed whatever the input. Element and attribute names are the
// program's own constants, never user input.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace qiao {

class XmlWriter {
 public:
  XmlWriter& open(std::string_view name);
  XmlWriter& attr(std::string_view name, std::string_view value);
  XmlWriter& text(std::string_view text);
  XmlWriter& close();
  // <name>text</name>
  XmlWriter& leaf(std::string_view name, std::string_view text);
  // Closes every open element and returns the document.
  std::string finish();

 private:
  void endStartTag();
  std::string out_;
  std::vector<std::string> stack_;
  bool in_start_tag_ = false;
  int depth_ = 0;
};

// Escapes for text and attribute values alike (& < > " '), replacing what XML cannot carry.
void appendXmlEscaped(std::string& out, std::string_view text);

}  // namespace qiao
