# Writes OUT, a C++ source whose openapi_document() returns the bytes of IN.
file(READ "${IN}" content HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," bytes "${content}")
file(WRITE "${OUT}" "// Generated from api/openapi.json by api/embed_openapi.cmake.\n"
  "#include \"api/openapi.hpp\"\nnamespace slotd {\nnamespace {\nconstexpr char kDocument[] = {${bytes}};\n}\n"
  "std::string_view openapi_document() { return {kDocument, sizeof kDocument}; }\n}  // namespace slotd\n")
