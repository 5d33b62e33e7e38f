"""DLP policies: loading them, and what each action does to real detector findings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genai.dlp import (
    DEFAULT_THRESHOLDS,
    WITHHELD,
    Dlp,
    DlpKeys,
    MemoryVault,
    Policy,
    mask,
    policy_from_options,
)
from genai.errors import DlpBlocked, ValidationError

KEYS = DlpKeys(b"unit-test key, long enough to use")
EMAIL, CARD, IBAN = "alice@example.com", "4111 1111 1111 1111", "DE89370400440532013000"
TEXT = f"Write to {EMAIL} about card {CARD} and IBAN {IBAN}."


@pytest.fixture(scope="module")
def dlp() -> Dlp:
    """Pattern recognizers only (fast); one detector per set of custom recognizers."""
    return Dlp(keys=KEYS, ner="none")


# --------------------------------------------------------------------------- loading


def test_a_policy_loads_from_yaml_and_json_files(tmp_path: Path) -> None:
    yaml_file = tmp_path / "p.yaml"
    yaml_file.write_text(
        "default_action: redact\n"
        "threshold: 0.4\n"
        "entities:\n"
        "  credit_card: {action: Pseudonymize, threshold: 0.3}\n"
        "  US_SSN: block\n"
        "recognizers:\n"
        "  - {kind: deny_list, entity_type: codename, values: [Bluebird]}\n"
        "fail_open: true\n"
    )
    policy = Policy.load(yaml_file)
    assert policy.default_action == "redact"
    assert policy.rule("CREDIT_CARD").action == "pseudonymise"  # both spellings, any case
    assert policy.threshold_for("CREDIT_CARD") == 0.3
    assert policy.threshold_for("EMAIL_ADDRESS") == 0.4
    assert policy.rule("US_SSN").action == "block"
    assert policy.recognizers[0].entity_type == "CODENAME"
    assert policy.fail_open is True
    json_file = tmp_path / "p.json"
    json_file.write_text(policy.to_json())
    assert Policy.load(json_file) == policy


def test_per_entity_thresholds_start_from_the_defaults() -> None:
    policy = Policy()
    assert policy.thresholds == DEFAULT_THRESHOLDS
    assert policy.threshold_for("PHONE_NUMBER") == 0.4
    assert policy.threshold_for("URL") == 0.6
    assert policy.threshold_for("PERSON") == policy.threshold == 0.5
    assert policy.min_threshold == 0.4
    assert policy.to_json() == "{}"  # the defaults are not stored with a project

    own = Policy.parse(
        {
            "threshold": 0.7,
            "thresholds": {"person": 0.8, "URL": 0.5},
            "entities": {"URL": {"action": "redact", "threshold": 0.9}},
        }
    )
    assert own.threshold_for("PERSON") == 0.8  # its own entry
    assert own.threshold_for("PHONE_NUMBER") == 0.4  # a default it kept
    assert own.threshold_for("URL") == 0.9  # the entity rule beats both
    assert own.threshold_for("EMAIL_ADDRESS") == 0.7  # no entry: the policy's threshold
    assert Policy.from_text(own.to_json()) == own


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"default_action": "shred"}, "default_action"),
        ({"entities": {"EMAIL_ADDRESS": "explode"}}, "entities.EMAIL_ADDRESS.action"),
        ({"entities": {"e-mail": "redact"}}, "not an entity type"),
        ({"threshold": 1.5}, "threshold"),
        ({"thresholds": {"PERSON": 2}}, "thresholds.PERSON"),
        ({"thresholds": {"e-mail": 0.5}}, "not an entity type"),
        ({"recognizers": [{"kind": "regex", "entity_type": "X", "patterns": ["(oops"]}]}, "(oops"),
        ({"recognizers": [{"kind": "account_number", "entity_type": "A", "formats": ["AC"]}]}, "#"),
        ({"recognizers": [{"kind": "magic", "entity_type": "X"}]}, "kind"),
        ({"colour": "blue"}, "colour"),
        ("not json", "not valid JSON"),
    ],
)
def test_a_bad_policy_says_what_is_wrong(data: object, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Policy.parse(data, source="the test policy")
    assert message in caught.value.message and "the test policy" in caught.value.message


def test_the_project_option_decides_whether_dlp_runs() -> None:
    default = Policy(default_action="redact")
    assert policy_from_options({}) is None
    assert policy_from_options({}, default=default) == default
    masked = policy_from_options({"dlp": '{"default_action": "mask"}'})
    assert masked is not None and masked.default_action == "mask"
    hashed = policy_from_options({"dlp": {"default_action": "hash"}})
    assert hashed is not None and hashed.default_action == "hash"
    assert policy_from_options({"dlp": '{"enabled": false}'}, default=default) is None
    assert policy_from_options({"dlp": False}, default=default) is None
    with pytest.raises(ValidationError, match="project 'p1'"):
        policy_from_options({"dlp": '{"threshold": 7}'}, project="p1")


# --------------------------------------------------------------------------- actions


@pytest.mark.parametrize(
    ("action", "email_becomes"),
    [
        ("redact", "<EMAIL_ADDRESS>"),
        ("mask", "*****@*******.***"),
        ("pseudonymise", "<EMAIL_ADDRESS_1>"),
        ("allow", EMAIL),
    ],
)
def test_each_action_on_an_email(dlp: Dlp, action: str, email_becomes: str) -> None:
    policy = Policy(default_action="redact", entities={"EMAIL_ADDRESS": action})
    out = dlp.anonymize([TEXT], policy).texts[0]
    assert out == f"Write to {email_becomes} about card <CREDIT_CARD> and IBAN <IBAN_CODE>."


def test_mask_keeps_separators_and_the_last_digits(dlp: Dlp) -> None:
    policy = Policy(entities={"CREDIT_CARD": {"action": "mask", "keep_last": 4}})
    out = dlp.anonymize([f"card {CARD}"], policy).texts[0]
    assert out == "card **** **** **** 1111"
    assert mask("12-34", keep_last=9) == "**-**"  # never all of a short value
    assert mask("ab", char="#") == "##"


def test_hash_is_stable_per_project_and_differs_between_projects(dlp: Dlp) -> None:
    policy = Policy(default_action="hash")
    a1 = dlp.anonymize([f"to {EMAIL}"], policy, project_id=1).texts[0]
    a2 = dlp.anonymize([f"again {EMAIL}"], policy, project_id=1).texts[0]
    b = dlp.anonymize([f"to {EMAIL}"], policy, project_id=2).texts[0]
    digest = a1.removeprefix("to ")
    assert digest.startswith("<EMAIL_ADDRESS:") and len(digest) == len("<EMAIL_ADDRESS:>") + 16
    assert a2 == f"again {digest}"
    assert b != a1 and EMAIL not in a1 + b
    other_key = Dlp(keys=DlpKeys(b"another key, also long enough!!!"), ner="none")
    assert other_key.anonymize([f"to {EMAIL}"], policy, project_id=1).texts[0] != a1


def test_pseudonyms_are_stable_within_a_session_and_restore(dlp: Dlp) -> None:
    vault = MemoryVault()
    policy = Policy()
    first = dlp.anonymize([TEXT], policy, project_id=1, session="s", vault=vault)
    assert first.texts == [
        "Write to <EMAIL_ADDRESS_1> about card <CREDIT_CARD_1> and IBAN <IBAN_CODE_1>."
    ]
    second = dlp.anonymize(
        [f"Also bob@example.org, and {EMAIL} again"], policy, project_id=1, session="s", vault=vault
    )
    assert second.texts == ["Also <EMAIL_ADDRESS_2>, and <EMAIL_ADDRESS_1> again"]
    answer = "I wrote to <EMAIL_ADDRESS_1> and [EMAIL ADDRESS 2] about <credit_card_1>."
    assert second.restorer.text(answer) == (f"I wrote to {EMAIL} and bob@example.org about {CARD}.")
    assert second.counts == {"EMAIL_ADDRESS": 2}
    assert EMAIL not in repr(second)


def test_thresholds_per_entity(dlp: Dlp) -> None:
    text = f"call +1 415 555 0100 or mail {EMAIL}"
    found = {f.entity_type: f.score for f in dlp.detector(Policy()).analyze(text)}
    phone = found["PHONE_NUMBER"]
    strict = Policy(
        default_action="redact",
        entities={"PHONE_NUMBER": {"action": "redact", "threshold": min(1.0, phone + 0.05)}},
    )
    assert dlp.anonymize([text], strict).texts[0] == "call +1 415 555 0100 or mail <EMAIL_ADDRESS>"
    loose = Policy(
        default_action="redact",
        threshold=0.99,
        entities={"PHONE_NUMBER": {"action": "redact", "threshold": 0.1}},
    )
    assert dlp.anonymize([text], loose).texts[0] == "call <PHONE_NUMBER> or mail <EMAIL_ADDRESS>"


def test_the_allow_list_keeps_known_values(dlp: Dlp) -> None:
    policy = Policy(default_action="redact", allow_list=("Support@Example.com",))
    out = dlp.anonymize([f"mail support@example.com or {EMAIL}"], policy).texts[0]
    assert out == "mail support@example.com or <EMAIL_ADDRESS>"


def test_default_allow_detects_only_what_the_policy_names(dlp: Dlp) -> None:
    policy = Policy(default_action="allow", entities={"CREDIT_CARD": "redact"})
    assert policy.entities_to_detect(frozenset({"CREDIT_CARD", "EMAIL_ADDRESS"})) == ["CREDIT_CARD"]
    out = dlp.anonymize([TEXT], policy).texts[0]
    assert out == f"Write to {EMAIL} about card <CREDIT_CARD> and IBAN {IBAN}."


def test_block_refuses_and_names_the_type_never_the_value(dlp: Dlp) -> None:
    policy = Policy(entities={"CREDIT_CARD": "block"})
    with pytest.raises(DlpBlocked) as caught:
        dlp.anonymize([TEXT, f"and {CARD}"], policy)
    message = caught.value.message
    assert "CREDIT_CARD (2)" in message and "genai dlp policy set" in message
    assert CARD not in message and "1111" not in message and EMAIL not in message


# --------------------------------------------------------------------------- recognizers


def test_custom_recognizers(dlp: Dlp) -> None:
    policy = Policy.parse(
        {
            "default_action": "redact",
            "recognizers": [
                {
                    "kind": "deny_list",
                    "entity_type": "CODENAME",
                    "values": ["Bluebird", "Night Jar"],
                },
                {
                    "kind": "regex",
                    "entity_type": "EMPLOYEE_ID",
                    "patterns": [r"\bE\d{6}\b"],
                    "score": 0.3,
                    "context": ["employee", "staff"],
                },
                {"kind": "account_number", "entity_type": "ACCOUNT", "formats": ["AC-####-@@##"]},
            ],
        }
    )
    texts = [
        "Project bluebird and NIGHT JAR are secret.",
        "Employee E123456 joined.",
        "Ticket E654321 is unrelated.",
        "Pay into AC-1234-XY99, not AC-1234-XY9 or xAC-1234-XY99.",
    ]
    assert dlp.anonymize(texts, policy).texts == [
        "Project <CODENAME> and <CODENAME> are secret.",
        "Employee <EMPLOYEE_ID> joined.",
        "Ticket E654321 is unrelated.",
        "Pay into <ACCOUNT>, not AC-1234-XY9 or xAC-1234-XY99.",
    ]


def test_a_case_sensitive_deny_list(dlp: Dlp) -> None:
    policy = Policy.parse(
        {
            "default_action": "redact",
            "recognizers": [
                {
                    "kind": "deny_list",
                    "entity_type": "CODENAME",
                    "values": ["Rose"],
                    "case_sensitive": True,
                }
            ],
        }
    )
    assert dlp.anonymize(["Rose smelled a rose"], policy).texts == ["<CODENAME> smelled a rose"]


# --------------------------------------------------------------------------- other callers


def test_redact_texts_for_ingestion_keeps_pseudonyms_consistent_and_no_vault(dlp: Dlp) -> None:
    before = dlp.vault.mapping(0, "request")
    docs = [f"From {EMAIL}", f"To bob@example.org, cc {EMAIL}", "nothing here"]
    assert dlp.redact_texts(docs) == [
        "From <EMAIL_ADDRESS_1>",
        "To <EMAIL_ADDRESS_2>, cc <EMAIL_ADDRESS_1>",
        "nothing here",
    ]
    assert dlp.vault.mapping(0, "request") == before == {}
    with pytest.raises(DlpBlocked, match="text 1"):
        dlp.redact_texts(["fine", f"card {CARD}"], Policy(entities={"CREDIT_CARD": "block"}))


def test_scrub_for_log_redacts_everything_whatever_the_policy(dlp: Dlp) -> None:
    lenient = Policy(
        default_action="allow",
        recognizers=[{"kind": "deny_list", "entity_type": "CODENAME", "values": ["Bluebird"]}],
    )
    line = dlp.scrub_for_log(f"{TEXT} Bluebird", lenient)
    assert line == (
        "Write to <EMAIL_ADDRESS> about card <CREDIT_CARD> and IBAN <IBAN_CODE>. <CODENAME>"
    )


def test_scrub_for_log_withholds_what_it_cannot_check(tmp_path: Path) -> None:
    broken = Dlp(keys=KEYS, ner=str(tmp_path / "no-such-model"))
    assert broken.scrub_for_log(TEXT) == WITHHELD


def test_person_names_with_the_bundled_ner() -> None:
    dlp = Dlp(keys=KEYS)  # the detector's default NER
    out = dlp.anonymize(
        ["John Smith met Mary Jones in Paris."], Policy(default_action="pseudonymise")
    )
    assert "John Smith" not in out.texts[0] and "Mary Jones" not in out.texts[0]
    assert "<PERSON_1>" in out.texts[0] and "<PERSON_2>" in out.texts[0]
    assert out.restorer.text(out.texts[0]) == "John Smith met Mary Jones in Paris."


def test_policies_serialise_compactly() -> None:
    policy = Policy(entities={"US_SSN": "block"})
    assert json.loads(policy.to_json()) == {"entities": {"US_SSN": {"action": "block"}}}
