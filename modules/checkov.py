"""Per-resource checkov suppressions, written beside the resource they excuse.

checkov's ``terraform_json`` framework (3.3.30) reads no inline ``checkov:skip`` comments: its runner scans every
resource with an empty skip list, so the only skips it offers are global (``--skip-check``), which would also
hide the same failure on any resource added later. Odin therefore records each accepted failure on its own
resource, in the JSON comment property Terraform ignores (``"//": {"checkov": {"CKV_...": "reason"}}``), and
tests/test_infra.py runs checkov with no skips at all and accepts a failure only where the failing resource
carries that check's id with a reason; a suppression no failure needs fails the test too.
"""

from __future__ import annotations

from cdktn import TerraformResource


def accept(resource: TerraformResource, check_id: str, reason: str) -> None:
    resource.add_override(f"//.checkov.{check_id}", reason)


def suppressions(resource_json: dict) -> dict[str, str]:
    comment = resource_json.get("//")
    return dict(comment.get("checkov", {})) if isinstance(comment, dict) else {}
