"""`mlmon serve`: a real process serving /metrics fed by synthetic reference traffic."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from mlmon.exporter import Profile
from mlmon.exporter.synthetic import RecordSampler
from tests.profiles import sample_profile_dict

M = {"model": "churn", "model_version": "3"}


def test_serve_with_synthetic_traffic(tmp_path):
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps(sample_profile_dict()))
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlmon.cli", "serve", "--profile", str(profile), "--port", "0",
         "--synthetic-rps", "200", "--duration", "20", "--seed", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.split()[1]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
        time.sleep(1.0)
        text = urllib.request.urlopen(url, timeout=10).read().decode()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    values = {(s.name, tuple(sorted(s.labels.items()))): s.value
              for f in text_string_to_metric_families(text) for s in f.samples}
    observed = values[("mlmon_observations_total", tuple(sorted(M.items())))]
    assert observed > 10
    ok = values[("mlmon_requests_total", tuple(sorted({**M, "outcome": "ok"}.items())))]
    assert ok >= observed - 1  # counted right after each observation
    assert ("mlmon_prediction_window_max", tuple(sorted(M.items()))) in values


def test_serve_bad_profile_is_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    out = subprocess.run([sys.executable, "-m", "mlmon.cli", "serve", "--profile", str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "bad.json" in out.stderr


def test_serve_port_out_of_range_is_one_line(tmp_path):
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps(sample_profile_dict()))
    out = subprocess.run([sys.executable, "-m", "mlmon.cli", "serve", "--profile", str(profile),
                          "--port", "99999"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.startswith("mlmon serve: error: cannot listen on 127.0.0.1:99999: ")
    assert out.stderr.count("\n") == 1


def test_synthetic_records_follow_the_reference_shares():
    profile = Profile.from_dict(sample_profile_dict())
    sampler = RecordSampler(profile, seed=3)
    rows = [sampler.sample() for _ in range(4000)]
    ages = [r[0]["age"] for r in rows if r[0]["age"] is not None]
    below_35 = sum(a <= 35.0 for a in ages) / len(ages)
    assert abs(below_35 - 0.5) < 0.03  # reference cumulative share at le=35 is 0.5
    paris = sum(r[0]["city"] == "paris" for r in rows) / len(rows)
    assert abs(paris - 0.6) < 0.03
