"""Packaging: what `make install` puts where (cmake --install of the test build into a temporary
prefix), the installed binaries run, and the systemd unit passes `systemd-analyze verify` where
systemd-analyze exists.
"""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

BUILD_DIR = os.environ.get("PRESENCED_BUILD_DIR", "../../build/asan")


class PackagingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.prefix = tempfile.mkdtemp(prefix="presenced-install-")
        subprocess.run(["cmake", "--install", BUILD_DIR, "--prefix", cls.prefix], check=True,
                       stdout=subprocess.DEVNULL)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.prefix, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.prefix, *parts)

    def test_binaries_dashboard_document_and_unit_are_installed(self):
        for rel in ("bin/presenced", "bin/presencectl"):
            self.assertTrue(os.access(self.path(rel), os.X_OK), rel)
        for rel in ("share/presenced/dashboard/index.html", "share/presenced/dashboard/app.js",
                    "share/presenced/openapi.yaml", "lib/systemd/system/presenced.service"):
            self.assertTrue(os.path.isfile(self.path(rel)), rel)

    def test_the_installed_binaries_run(self):
        for name in ("presenced", "presencectl"):
            out = subprocess.run([self.path("bin", name), "--version"], capture_output=True,
                                 text=True, check=True).stdout
            self.assertIn("0.1.0", out)

    def test_the_unit_runs_the_binary_and_verifies(self):
        with open(self.path("lib/systemd/system/presenced.service")) as f:
            unit = f.read()
        exec_start = re.search(r"^ExecStart=(\S+)", unit, re.M).group(1)
        self.assertTrue(exec_start.endswith("/bin/presenced"), exec_start)
        self.assertIn("StateDirectory=presenced", unit)
        self.assertIn("PRESENCED_DATA_DIR=/var/lib/presenced", unit)
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            self.skipTest("systemd-analyze is not installed")
        # The unit names the configured prefix; verify it against the binary installed here.
        unit_dir = tempfile.mkdtemp(prefix="presenced-unit-")
        try:
            local = os.path.join(unit_dir, "presenced.service")
            with open(local, "w") as f:
                f.write(unit.replace("ExecStart=" + exec_start,
                                     "ExecStart=" + self.path("bin", "presenced")))
            r = subprocess.run([analyze, "verify", local], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertNotIn("presenced.service", r.stderr)  # no warning about our unit
        finally:
            shutil.rmtree(unit_dir, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
