"""The workspace a Slack emulator starts with: team, bot identity, users, user groups, channels.

Tests and the demo pass their own ``SlackSeed``; ``SlackSeed()`` is the default opsgate demo
workspace (a requester, two approvers in ``@integration-leads``, an outsider and an admin).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "DEFAULT_BOT_TOKEN",
    "DEFAULT_CHANNELS",
    "DEFAULT_USERGROUPS",
    "DEFAULT_USERS",
    "SlackChannel",
    "SlackSeed",
    "SlackUser",
    "SlackUsergroup",
]

DEFAULT_BOT_TOKEN = "xoxb-opsgate-emulator-token"


class SlackUser(BaseModel):
    """A workspace member as users.info describes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str
    real_name: str = ""
    email: str | None = None
    tz: str = "Europe/Berlin"
    is_admin: bool = False
    is_bot: bool = False
    deleted: bool = False


class SlackUsergroup(BaseModel):
    """A user group (``@handle``); Slack calls its id a subteam id (``S...``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    handle: str
    name: str = ""
    users: tuple[str, ...] = ()


class SlackChannel(BaseModel):
    """A public or private channel; ``members`` None means every workspace member is in it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str
    is_private: bool = False
    topic: str = ""
    members: tuple[str, ...] | None = None


DEFAULT_USERS: tuple[SlackUser, ...] = (
    SlackUser(id="U_REQ", name="rhea.requester", real_name="Rhea Requester", email="rhea@example.com"),
    SlackUser(id="U_APP1", name="alex.approver", real_name="Alex Approver", email="alex@example.com"),
    SlackUser(id="U_APP2", name="bea.approver", real_name="Bea Approver", email="bea@example.com"),
    SlackUser(id="U_OUT", name="oscar.outsider", real_name="Oscar Outsider", email="oscar@example.com"),
    SlackUser(id="U_ADMIN", name="ada.admin", real_name="Ada Admin", email="ada@example.com", is_admin=True),
)
DEFAULT_USERGROUPS: tuple[SlackUsergroup, ...] = (
    SlackUsergroup(
        id="S_LEADS", handle="integration-leads", name="Integration leads", users=("U_APP1", "U_APP2")
    ),
    SlackUsergroup(id="S_ONCALL", handle="integration-oncall", name="Integration on-call", users=("U_APP1",)),
)
DEFAULT_CHANNELS: tuple[SlackChannel, ...] = (
    SlackChannel(id="C_APPROVALS", name="approvals", topic="Change approvals"),
    SlackChannel(id="C_ALERTS", name="alerts", topic="Integration alerts"),
    SlackChannel(id="C_ORDERS", name="orders-edi", topic="EDI order flow"),
)


class SlackSeed(BaseModel):
    """Everything the emulator's workspace holds before the first request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    team_id: str = "T0001"
    team_name: str = "opsgate demo"
    team_domain: str = "opsgate-demo"
    app_id: str = "A_OPSGATE"
    bot_id: str = "B_OPSGATE"
    bot_user_id: str = "U_OPSGATE"
    bot_name: str = "opsgate"
    users: tuple[SlackUser, ...] = Field(default=DEFAULT_USERS)
    usergroups: tuple[SlackUsergroup, ...] = Field(default=DEFAULT_USERGROUPS)
    channels: tuple[SlackChannel, ...] = Field(default=DEFAULT_CHANNELS)

    @model_validator(mode="after")
    def _references_resolve(self) -> SlackSeed:
        user_ids = {user.id for user in self.users}
        if len(user_ids) != len(self.users) or self.bot_user_id in user_ids:
            raise ValueError("user ids must be unique and differ from bot_user_id")
        for group in self.usergroups:
            unknown = set(group.users) - user_ids
            if unknown:
                raise ValueError(f"usergroup {group.id} names unknown users {sorted(unknown)}")
        for channel in self.channels:
            unknown = set(channel.members or ()) - user_ids - {self.bot_user_id}
            if unknown:
                raise ValueError(f"channel {channel.id} names unknown members {sorted(unknown)}")
        return self

    def bot_user(self) -> SlackUser:
        """The app's bot user, which users.info also answers for."""
        return SlackUser(id=self.bot_user_id, name=self.bot_name, real_name=self.bot_name, is_bot=True)
