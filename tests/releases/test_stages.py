from releases import stages
from releases.stage_names import Stage


def test_sizes_move_forward_internal_partners_public():
    assert stages.transition_allowed(Stage.INTERNAL, Stage.PARTNERS)
    assert stages.transition_allowed(Stage.PARTNERS, Stage.PUBLIC)
    assert stages.transition_allowed(Stage.INTERNAL, Stage.PUBLIC)


def test_withdrawn_is_reachable_from_every_other_stage():
    for stage in (Stage.INTERNAL, Stage.PARTNERS, Stage.PUBLIC):
        assert stages.transition_allowed(stage, Stage.WITHDRAWN)


def test_moving_back_is_only_possible_through_withdrawn():
    assert not stages.transition_allowed(Stage.PUBLIC, Stage.PARTNERS)
    assert not stages.transition_allowed(Stage.PUBLIC, Stage.INTERNAL)
    assert not stages.transition_allowed(Stage.PARTNERS, Stage.INTERNAL)
    for stage in (Stage.INTERNAL, Stage.PARTNERS, Stage.PUBLIC):
        assert stages.transition_allowed(Stage.WITHDRAWN, stage)


def test_no_stage_transitions_to_itself():
    for stage in Stage:
        assert not stages.transition_allowed(stage, stage)


def test_default_approvals_are_one_for_partners_two_for_public_one_for_withdrawn(settings):
    del settings.STAGEGATE_APPROVALS_REQUIRED
    assert stages.approvals_required(Stage.PARTNERS) == 1
    assert stages.approvals_required(Stage.PUBLIC) == 2
    assert stages.approvals_required(Stage.WITHDRAWN) == 1


def test_approvals_are_configurable_but_never_below_one(settings):
    settings.STAGEGATE_APPROVALS_REQUIRED = {"public": 3, "partners": 0}
    assert stages.approvals_required(Stage.PUBLIC) == 3
    assert stages.approvals_required(Stage.PARTNERS) == 1
    assert stages.approvals_required(Stage.WITHDRAWN) == 1


def test_releases_need_every_factor_but_withdrawals_do_not():
    assert stages.factors_required(Stage.PARTNERS)
    assert stages.factors_required(Stage.PUBLIC)
    assert not stages.factors_required(Stage.WITHDRAWN)
