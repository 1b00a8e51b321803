"""PlatformIO custom test runner (test_framework = custom) for tinyfed.

The test image runs in QEMU (test_testing_command in platformio.ini) and
prints one "test:<name>:PASS|FAIL" line per check over semihosting, then
"tinyfed-test-done"; QEMU's exit code is the number of failures.
"""

import re

from platformio.public import TestCase, TestRunnerBase, TestStatus

_LINE = re.compile(r"^test:(?P<name>[\w.-]+):(?P<status>PASS|FAIL)\s*$")


class CustomTestRunner(TestRunnerBase):
    def on_testing_line_output(self, line):
        if self.options.verbose:
            print(line, end="")
        text = line.strip()
        m = _LINE.match(text)
        if m:
            self.test_suite.add_case(TestCase(
                name=m.group("name"),
                status=TestStatus.PASSED if m.group("status") == "PASS" else TestStatus.FAILED,
                stdout=text,
            ))
        elif text.startswith("tinyfed: fatal"):
            self.test_suite.add_case(TestCase(name="fatal", status=TestStatus.ERRORED, stdout=text))
        if text == "tinyfed-test-done" or text.startswith("tinyfed: fatal"):
            self.test_suite.on_finish()
