"""Fail when a test run reported fewer tests than pytest collects: a parallel run that lost items would
otherwise pass. Usage: python scripts/check_test_count.py JUNIT_XML [PYTEST ARGS…]"""

import subprocess
import sys
import xml.etree.ElementTree as ElementTree


def main() -> int:
    report, *args = sys.argv[1:]
    root = ElementTree.parse(report).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    reported = sum(int(suite.get("tests", 0)) for suite in suites)
    listed = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", *args], check=True,
                            capture_output=True, text=True).stdout.splitlines()
    collected = sum(1 for line in listed if "::" in line)
    if reported != collected:
        print(f"test count: {reported} reported, {collected} collected: the run lost tests", file=sys.stderr)
        return 1
    print(f"test count: all {collected} collected tests reported")
    return 0


if __name__ == "__main__":
    sys.exit(main())
