#include "node/vm/xml_writer.h"

#include <cstdint>
#include <cstdlib>

namespace qiao {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Decodes one UTF-8 sequence at s[i]; returns its length, or 0 when invalid.
size_t decodeUtf8(std::string_view s, size_t i, uint32_t* cp) {
  auto c = static_cast<unsigned char>(s[i]);
  size_t len;
  uint32_t v;
  if (c < 0x80) {
    *cp = c;
    return 1;
  } else if ((c >> 5) == 0x6) {
    len = 2;
    v = c & 0x1F;
  } else if ((c >> 4) == 0xE) {
    len = 3;
    v = c & 0x0F;
  } else if ((c >> 3) == 0x1E) {
    len = 4;
    v = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    v = (v << 6) | (cc & 0x3F);
  }
  // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
  if ((len == 2 && v < 0x80) || (len == 3 && v < 0x800) || (len == 4 && v < 0x10000) ||
      (v >= 0xD800 && v <= 0xDFFF) || v > 0x10FFFF) {
    return 0;
  }
  *cp = v;
  return len;
}

// XML 1.0 Char production.
bool xmlChar(uint32_t cp) {
  return cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) ||
         (cp >= 0xE000 && cp <= 0xFFFD) || (cp >= 0x10000 && cp <= 0x10FFFF);
}

bool validName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == ':' || c == '.';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

void appendXmlEscaped(std::string& out, std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    uint32_t cp = 0;
    size_t len = decodeUtf8(text, i, &cp);
    if (len == 0) {
      out += kReplacement;
      ++i;
      continue;
    }
    if (!xmlChar(cp)) {
      out += kReplacement;
    } else if (cp == '&') {
      out += "&amp;";
    } else if (cp == '<') {
      out += "&lt;";
    } else if (cp == '>') {
      out += "&gt;";
    } else if (cp == '"') {
      out += "&quot;";
    } else if (cp == '\'') {
      out += "&apos;";
    } else if (cp == '\r') {
      out += "&#13;";  // a raw CR would be normalised away by a parser
    } else {
      out.append(text.substr(i, len));
    }
    i += len;
  }
}

void XmlWriter::endStartTag() {
  if (in_start_tag_) {
    out_ += '>';
    in_start_tag_ = false;
  }
}

XmlWriter& XmlWriter::open(std::string_view name) {
  if (!validName(name)) std::abort();  // names are constants of the program
  endStartTag();
  out_ += '<';
  out_ += name;
  stack_.emplace_back(name);
  in_start_tag_ = true;
  return *this;
}

XmlWriter& XmlWriter::attr(std::string_view name, std::string_view value) {
  if (!in_start_tag_ || !validName(name)) std::abort();
  out_ += ' ';
  out_ += name;
  out_ += "=\"";
  appendXmlEscaped(out_, value);
  out_ += '"';
  return *this;
}

XmlWriter& XmlWriter::text(std::string_view text) {
  endStartTag();
  appendXmlEscaped(out_, text);
  return *this;
}

XmlWriter& XmlWriter::close() {
  if (stack_.empty()) std::abort();
  if (in_start_tag_) {
    out_ += "/>";
    in_start_tag_ = false;
  } else {
    out_ += "</";
    out_ += stack_.back();
    out_ += '>';
  }
  stack_.pop_back();
  return *this;
}

XmlWriter& XmlWriter::leaf(std::string_view name, std::string_view text) {
  open(name);
  this->text(text);
  return close();
}

std::string XmlWriter::finish() {
  while (!stack_.empty()) close();
  out_ += '\n';
  return std::move(out_);
}

}  // namespace qiao
