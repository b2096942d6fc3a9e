"""Generated credentials: one convention for every password the platform creates."""

from __future__ import annotations

import pulumi
import pulumi_random as random


def generated_password(name: str, parent: pulumi.Resource | None, length: int = 32) -> pulumi.Output[str]:
    """A random password (letters and digits only, so it is safe inside URLs and config files).

    32 alphanumerics are ~190 bits of entropy; the result is a secret Output.
    """
    password = random.RandomPassword(
        name,
        length=length,
        special=False,
        min_lower=2,
        min_upper=2,
        min_numeric=2,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return pulumi.Output.secret(password.result)
