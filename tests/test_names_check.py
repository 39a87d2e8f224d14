#!/usr/bin/env python3
"""Every doctest case must run under ctest: doctest_discover_tests turns each TEST_CASE
name into a ctest entry and a --test-case filter, and CMake cuts a name at ';' (its list
separator), so such a case is filtered out and silently never runs (it "passes" with 0
test cases). Fails listing each TEST_CASE name under tests/ that holds a ';'.

Usage: python3 tests/test_names_check.py [TESTS_DIR]
"""
import pathlib
import re
import sys

tests_dir = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parent)
pattern = re.compile(r'TEST_CASE\(\s*"((?:[^"\\]|\\.)*)"')  # the name may start on the next line
bad = []
checked = 0
for path in sorted(tests_dir.rglob("*.cpp")):
    text = path.read_text(encoding="utf-8")
    for m in pattern.finditer(text):
        checked += 1
        if ";" in m.group(1):
            bad.append(f"{path}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(1)}")
if checked == 0:
    sys.exit(f"test_names_check: no TEST_CASE found under {tests_dir}")
if bad:
    print("TEST_CASE names with ';' (ctest would never run them; use ',' instead):")
    print("\n".join(bad))
    sys.exit(1)
print(f"test_names_check: {checked} TEST_CASE names, none with ';'")
