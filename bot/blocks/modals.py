"""Modals: the reject reason, and the forms behind /promote, /rotate and /release without arguments.

Selects list what the config declares; a list longer than a static select allows (100) becomes an
external select (its options come from `build_options`), an empty list becomes a text input.
`validate_new_request_submission` checks a submitted form for `response_action: errors`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    ExternalDataSelectElement,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.blocks.requests import request_title
from bot.blocks.text import MAX_VIEW_BLOCKS, cap_blocks, escaped, fit, person
from bot.config.opsgate import OpsgateConfig
from bot.domain.requests import ChangeRequest
from bot.ids import ActionId, BlockId, ViewId
from bot.payloads import NewRequestModalMetadata, RejectModalMetadata
from commands.parsing import MAX_REASON, looks_like_asset_id, looks_like_version, usage_for

__all__ = [
    "INPUT_ACTION",
    "MAX_STATIC_OPTIONS",
    "RequestKind",
    "build_new_request_modal",
    "build_options",
    "build_reject_modal",
    "validate_new_request_submission",
]

RequestKind = Literal["promotion", "rotation", "release"]

MAX_STATIC_OPTIONS = 100
_OPTION_TEXT = 75
_OPTION_VALUE = 150
_VIEW_TEXT = 24
_MAX_NAME = 150  # an option value; typed names are held to the same length

# Which element (action_id) answers in each input block; the submission is read with these.
INPUT_ACTION: Mapping[BlockId, ActionId] = {
    BlockId.REASON: ActionId.REASON_INPUT,
    BlockId.ARTIFACT: ActionId.ARTIFACT_SELECT,
    BlockId.VERSION: ActionId.VERSION_INPUT,
    BlockId.FROM_ENV: ActionId.FROM_ENV_SELECT,
    BlockId.TO_ENV: ActionId.TO_ENV_SELECT,
    BlockId.CREDENTIAL: ActionId.CREDENTIAL_SELECT,
    BlockId.ENVIRONMENT: ActionId.ENVIRONMENT_SELECT,
    BlockId.ASSET: ActionId.ASSET_INPUT,
    BlockId.DESTINATION: ActionId.DESTINATION_SELECT,
    BlockId.EMERGENCY_REASON: ActionId.EMERGENCY_REASON_INPUT,
}

_CALLBACK: Mapping[RequestKind, ViewId] = {
    "promotion": ViewId.NEW_PROMOTION,
    "rotation": ViewId.NEW_ROTATION,
    "release": ViewId.NEW_RELEASE,
}
_COMMAND: Mapping[RequestKind, Literal["promote", "rotate", "release"]] = {
    "promotion": "promote",
    "rotation": "rotate",
    "release": "release",
}
_REQUIRED: Mapping[RequestKind, tuple[BlockId, ...]] = {
    "promotion": (BlockId.ARTIFACT, BlockId.VERSION, BlockId.FROM_ENV, BlockId.TO_ENV),
    "rotation": (BlockId.CREDENTIAL, BlockId.ENVIRONMENT),
    "release": (BlockId.ASSET, BlockId.DESTINATION),
}
_MISSING: Mapping[BlockId, str] = {
    BlockId.ARTIFACT: "Choose the artifact to promote.",
    BlockId.VERSION: "Enter the version to promote, like 1.4.0.",
    BlockId.FROM_ENV: "Choose the environment to promote from.",
    BlockId.TO_ENV: "Choose the environment to promote to.",
    BlockId.CREDENTIAL: "Choose the credential to rotate.",
    BlockId.ENVIRONMENT: "Choose the environment.",
    BlockId.ASSET: "Enter the asset ID.",
    BlockId.DESTINATION: "Choose where to release it.",
}


def _plain(text: str) -> PlainTextObject:
    return PlainTextObject(text=text)


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


def _option(value: str, description: str = "") -> Option:
    return Option(
        text=fit(value, _OPTION_TEXT),
        value=value,
        description=fit(description, _OPTION_TEXT) if description else None,
    )


def build_options(query: str, choices: Sequence[str], limit: int = MAX_STATIC_OPTIONS) -> list[Option]:
    """Suggestions for an external select: case-insensitive matches, prefix matches first."""
    needle = query.strip().lower()
    usable = [c for c in _unique(choices) if len(c) <= _OPTION_VALUE]
    prefix = [c for c in usable if c.lower().startswith(needle)]
    inside = [c for c in usable if needle in c.lower() and not c.lower().startswith(needle)]
    return [_option(c) for c in (prefix + inside)[: max(min(limit, MAX_STATIC_OPTIONS), 0)]]


def _choice_input(
    block_id: BlockId,
    label: str,
    choices: Sequence[str],
    *,
    placeholder: str,
    descriptions: Mapping[str, str] | None = None,
    hint: str | None = None,
) -> InputBlock:
    """A static select, an external select when there are too many, a text input when none."""
    action_id = INPUT_ACTION[block_id]
    # A choice longer than an option value cannot be offered; the use case still accepts it typed.
    usable = [c for c in _unique(choices) if len(c) <= _OPTION_VALUE]
    element: StaticSelectElement | ExternalDataSelectElement | PlainTextInputElement
    if not usable:
        element = PlainTextInputElement(
            action_id=action_id, placeholder=_plain(placeholder), max_length=_MAX_NAME
        )
    elif len(usable) <= MAX_STATIC_OPTIONS:
        element = StaticSelectElement(
            action_id=action_id,
            placeholder=_plain(placeholder),
            options=[_option(c, (descriptions or {}).get(c, "")) for c in usable],
        )
    else:
        element = ExternalDataSelectElement(
            action_id=action_id, placeholder=_plain(placeholder), min_query_length=0
        )
    return InputBlock(
        block_id=block_id, label=_plain(label), element=element, hint=_plain(hint) if hint else None
    )


def _text_input(
    block_id: BlockId,
    label: str,
    *,
    placeholder: str,
    max_length: int,
    optional: bool = False,
    multiline: bool = False,
    hint: str | None = None,
) -> InputBlock:
    element = PlainTextInputElement(
        action_id=INPUT_ACTION[block_id],
        placeholder=_plain(placeholder),
        max_length=max_length,
        multiline=multiline,
    )
    return InputBlock(
        block_id=block_id,
        label=_plain(label),
        element=element,
        optional=optional,
        hint=_plain(hint) if hint else None,
    )


def build_reject_modal(request: ChangeRequest, metadata: RejectModalMetadata) -> View:
    """Asks the approver why; the reason (required, up to 2,000 characters) goes to the requester."""
    summary = f"*{escaped(request_title(request), 500)}*\nRequested by {person(request.requester)}"
    if request.reason.strip():
        summary += f"\n> {escaped(' '.join(request.reason.split()), 1000)}"
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=summary)),
        InputBlock(
            block_id=BlockId.REASON,
            label=_plain("Why are you rejecting it?"),
            element=PlainTextInputElement(
                action_id=ActionId.REASON_INPUT,
                multiline=True,
                min_length=1,
                max_length=MAX_REASON,
                placeholder=_plain("What would have to change for you to approve it"),
            ),
            hint=_plain("The requester sees this reason."),
            optional=False,
        ),
    ]
    return View(
        type="modal",
        callback_id=ViewId.REJECT_REASON,
        title=_plain(fit(f"Reject {request.human_id}", _VIEW_TEXT)),
        submit=_plain("Reject"),
        close=_plain("Cancel"),
        private_metadata=metadata.model_dump_json(),
        blocks=blocks,
    )


def _artifacts(config: OpsgateConfig) -> tuple[list[str], dict[str, str]]:
    artifacts: list[str] = []
    solution_of: dict[str, str] = {}
    for solution in config.solutions:
        for artifact in solution.artifacts:
            artifacts.append(artifact)
            solution_of.setdefault(artifact, solution.name)
    return _unique(artifacts), solution_of


def _environment_notes(config: OpsgateConfig) -> dict[str, str]:
    notes = {}
    for name, env in config.environments.items():
        note = env.description.strip() or ""
        if env.production:
            note = f"production · {note}" if note else "production"
        notes[name] = note
    return notes


def build_new_request_modal(
    kind: RequestKind,
    *,
    config: OpsgateConfig,
    credentials: Sequence[str],
    destinations: Sequence[str],
    metadata: NewRequestModalMetadata,
) -> View:
    """The form for a new promotion, rotation or release (what the slash command would take)."""
    environments = list(config.environments)
    env_notes = _environment_notes(config)
    fields: list[Block]
    match kind:
        case "promotion":
            artifacts, solution_of = _artifacts(config)
            fields = [
                _choice_input(
                    BlockId.ARTIFACT,
                    "Artifact",
                    artifacts,
                    placeholder="Choose an artifact",
                    descriptions={a: f"solution {s}" for a, s in solution_of.items()},
                ),
                _text_input(BlockId.VERSION, "Version", placeholder="1.4.0", max_length=64),
                _choice_input(
                    BlockId.FROM_ENV, "From", environments, placeholder="Source", descriptions=env_notes
                ),
                _choice_input(
                    BlockId.TO_ENV, "To", environments, placeholder="Target", descriptions=env_notes
                ),
            ]
        case "rotation":
            fields = [
                _choice_input(
                    BlockId.CREDENTIAL, "Credential", credentials, placeholder="Choose a credential"
                ),
                _choice_input(
                    BlockId.ENVIRONMENT,
                    "Environment",
                    environments,
                    placeholder="Choose an environment",
                    descriptions=env_notes,
                ),
            ]
        case "release":
            fields = [
                _text_input(
                    BlockId.ASSET,
                    "Asset ID",
                    placeholder="The Canto asset ID",
                    max_length=128,
                ),
                _choice_input(
                    BlockId.DESTINATION, "Destination", destinations, placeholder="Choose a destination"
                ),
            ]
    tip = f"Same as `{escaped(usage_for(_COMMAND[kind], config.slack.command(_COMMAND[kind])), 500)}`"
    blocks: list[Block] = [
        *fields,
        _text_input(
            BlockId.REASON,
            "Reason",
            placeholder="Why this change, why now",
            max_length=MAX_REASON,
            optional=True,
            multiline=True,
        ),
        _text_input(
            BlockId.EMERGENCY_REASON,
            "Emergency reason (break-glass)",
            placeholder="Leave empty unless this is an emergency",
            max_length=MAX_REASON,
            optional=True,
            hint=(
                "Only in an emergency, where the policy allows it: skips approvals and change windows; "
                "approvers are told and must review it afterwards."
            ),
        ),
        ContextBlock(elements=[MarkdownTextObject(text=tip)]),
    ]
    return View(
        type="modal",
        callback_id=_CALLBACK[kind],
        title=_plain(f"New {kind}"),
        submit=_plain("Request approval"),
        close=_plain("Cancel"),
        private_metadata=metadata.model_dump_json(),
        blocks=cap_blocks(blocks, MAX_VIEW_BLOCKS),
    )


def _submitted(values: Mapping[str, Mapping[str, Any]], block_id: BlockId) -> str:
    """The text or selected option value in one input block; "" when empty or absent."""
    state = values.get(block_id.value, {}).get(INPUT_ACTION[block_id].value)
    if not isinstance(state, Mapping):
        return ""
    selected = state.get("selected_option")
    if isinstance(selected, Mapping):
        return str(selected.get("value") or "").strip()
    value = state.get("value")
    return value.strip() if isinstance(value, str) else ""


def validate_new_request_submission(
    kind: RequestKind, values: Mapping[str, Mapping[str, Any]]
) -> tuple[dict[str, str], dict[str, str]]:
    """(fields by block id, errors by block id) from `view.state.values`; no errors means valid.

    Fields always hold the kind's required inputs and "reason" (maybe ""); "emergency_reason" only
    when one was given.
    """
    fields: dict[str, str] = {}
    errors: dict[str, str] = {}
    for block_id in _REQUIRED[kind]:
        value = _submitted(values, block_id)
        fields[block_id.value] = value
        if not value:
            errors[block_id.value] = _MISSING[block_id]
        elif len(value) > _MAX_NAME or not value.isprintable():
            errors[block_id.value] = f"At most {_MAX_NAME} characters on one line."
    version = fields.get(BlockId.VERSION.value)
    if version and BlockId.VERSION.value not in errors and not looks_like_version(version):
        errors[BlockId.VERSION.value] = f"'{fit(version, 40)}' must look like 1.4.0."
    asset = fields.get(BlockId.ASSET.value)
    if asset and BlockId.ASSET.value not in errors and not looks_like_asset_id(asset):
        errors[BlockId.ASSET.value] = "One word of letters, digits, . _ : / or -."
    if (
        kind == "promotion"
        and fields[BlockId.FROM_ENV.value]
        and (fields[BlockId.FROM_ENV.value] == fields[BlockId.TO_ENV.value])
    ):
        errors[BlockId.TO_ENV.value] = "Choose an environment other than the source."
    fields[BlockId.REASON.value] = _submitted(values, BlockId.REASON)
    emergency = _submitted(values, BlockId.EMERGENCY_REASON)
    if emergency:
        fields[BlockId.EMERGENCY_REASON.value] = emergency
    for block_id in (BlockId.REASON, BlockId.EMERGENCY_REASON):
        if len(fields.get(block_id.value, "")) > MAX_REASON:
            errors[block_id.value] = f"At most {MAX_REASON} characters."
    return fields, errors
