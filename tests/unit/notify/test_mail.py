"""``notify.email`` for batch jobs: SLURM's mail types per kind of job (``Profile.with_mail``)."""

from __future__ import annotations

import pytest

from labkit.cluster import load_profile
from labkit.config import NotifyConfig
from labkit.errors import ConfigError
from tests.conftest import REPO

PROFILE = REPO / "cluster" / "slurm-local.yaml"


def test_each_kind_of_job_is_mailed_its_own_events() -> None:
    profile, _ = load_profile(PROFILE)
    notify = NotifyConfig(email="ana@example.org")  # every event
    run, workers, summary = (profile.with_mail(notify, job) for job in ("run", "workers", "summary"))
    assert (run.mail_user, run.mail_type) == ("ana@example.org", "END,FAIL,REQUEUE")
    assert workers.mail_type == "FAIL,REQUEUE"  # a trial's end is not its worker's
    assert summary.mail_type == "END,FAIL"  # study_done: the summary job's end
    assert "--mail-type=END,FAIL,REQUEUE" in run.directives()


def test_only_the_events_in_on() -> None:
    profile, _ = load_profile(PROFILE)
    assert profile.with_mail(NotifyConfig(email="a@b.org", on=("nan", "failed")), "run").mail_type == "FAIL"
    assert profile.with_mail(NotifyConfig(email="a@b.org", on=("study_done",)), "run") == profile


def test_no_email_leaves_the_profile_as_it_is() -> None:
    profile, _ = load_profile(PROFILE, ["mail_user=site@example.org", "mail_type=ALL"])
    assert profile.with_mail(None, "run") == profile
    assert profile.with_mail(NotifyConfig(webhook_env="LABKIT_WEBHOOK"), "run") == profile


def test_an_address_unfit_for_an_sbatch_line_is_refused() -> None:
    profile, _ = load_profile(PROFILE)
    with pytest.raises(ConfigError, match=r"notify\.email 'a\$x@b\.org': cannot go on an #SBATCH line"):
        profile.with_mail(NotifyConfig(email="a$x@b.org"), "run")
