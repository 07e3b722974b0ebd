"""doctor fails an inferenceCredentialHelper that prints another surface's shape: a `gatekey wrap
--format headers` (MCP, OTLP) or `git-credential` (marketplace) wrapper, or a profile with such an
`output`. Claude's inference helper reads a bare token or {"token", "headers"}: it would take the
whole header map or credential lines as the token, and every request would be refused."""

from __future__ import annotations

import pytest

from blackbox_env import Env
from claude_managed import doctor_lines, gateway_with_helper

pytestmark = pytest.mark.blackbox

PROFILE = (
    '[profiles.corp]\nsource = "command"\ncommand = ["/bin/echo", "tok-5d2c8e1f7a9b3046"]\n'
    "allow_insecure_cache = true\n"
)


def helper_line(gk: Env) -> tuple[str, str]:
    r = gk.run("doctor")
    assert "Traceback" not in r.err, r.err
    return doctor_lines(r)["helper"]


@pytest.mark.parametrize("shape", ["headers", "git-credential"])
def test_a_wrapper_of_another_surfaces_shape_fails_as_the_inference_helper(
    gk: Env, shape: str
) -> None:
    gk.write_config(PROFILE)
    opt = gk.root / "opt"
    opt.mkdir(mode=0o755)
    target = opt / f"gatekey-{shape}"
    assert gk.run("wrap", "-p", "corp", "--format", shape, "-o", str(target)).code == 0
    gateway_with_helper(gk, str(target))
    verdict, text = helper_line(gk)
    assert verdict == "FAIL", text
    assert f"it prints the {shape} output" in text


def test_a_profile_whose_output_is_headers_fails_and_json_passes(gk: Env) -> None:
    gk.write_config(PROFILE + 'output = "headers"\n')
    gateway_with_helper(gk)
    verdict, text = helper_line(gk)
    assert verdict == "FAIL", text
    assert "it prints the headers output" in text
    gk.write_config(PROFILE + 'output = "json"\n')
    verdict, text = helper_line(gk)
    assert verdict == "OK", text
