"""Meta webhook wire models (both payload eras: phone `wa_id`/`from` and BSUID `user_id`/`from_user_id`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from xypr.core.wire import WireEnum

__all__ = [
    "IDENTITY_CHANGES",
    "WaButton",
    "WaCardAddress",
    "WaCardEmail",
    "WaCardName",
    "WaCardOrg",
    "WaCardPhone",
    "WaCardUrl",
    "WaContact",
    "WaContactCard",
    "WaContext",
    "WaEdit",
    "WaError",
    "WaFlowReply",
    "WaInboundMessage",
    "WaInteractive",
    "WaInteractiveType",
    "WaLocation",
    "WaMedia",
    "WaMessageContent",
    "WaMessageType",
    "WaMetadata",
    "WaOrder",
    "WaOrderItem",
    "WaProfile",
    "WaReaction",
    "WaReferral",
    "WaReferredProduct",
    "WaReplyChoice",
    "WaRevoke",
    "WaStatus",
    "WaStatusValue",
    "WaSystem",
    "WaSystemType",
    "WaText",
    "WebhookChange",
    "WebhookEntry",
    "WebhookPayload",
    "WebhookValue",
    "customer_id_type",
    "customer_of",
    "is_bsuid",
]


class _Wire(BaseModel):
    # Meta adds fields over time; unknown ones are kept, never a reason to fail.
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class WaMetadata(_Wire):
    display_phone_number: str | None = None
    phone_number_id: str


class WaProfile(_Wire):
    name: str | None = None
    username: str | None = None


class WaContact(_Wire):
    wa_id: str | None = None
    user_id: str | None = None
    profile: WaProfile | None = None


class WaText(_Wire):
    body: str


class WaMedia(_Wire):
    """`image` / `audio` / `video` / `document` / `sticker` of a message: a media id to fetch within 7 days."""

    id: str
    mime_type: str | None = None
    sha256: str | None = None  # base64 in webhooks, hex in the media URL answer
    caption: str | None = None
    filename: str | None = None
    voice: bool | None = None
    animated: bool | None = None
    url: str | None = None


class WaLocation(_Wire):
    latitude: float | None = None
    longitude: float | None = None
    name: str | None = None
    address: str | None = None
    url: str | None = None


class WaCardName(_Wire):
    formatted_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    middle_name: str | None = None
    prefix: str | None = None
    suffix: str | None = None


class WaCardOrg(_Wire):
    company: str | None = None
    department: str | None = None
    title: str | None = None


class WaCardPhone(_Wire):
    phone: str | None = None
    wa_id: str | None = None
    type: str | None = None


class WaCardEmail(_Wire):
    email: str | None = None
    type: str | None = None


class WaCardUrl(_Wire):
    url: str | None = None
    type: str | None = None


class WaCardAddress(_Wire):
    street: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    country: str | None = None
    country_code: str | None = None
    type: str | None = None


class WaContactCard(_Wire):
    """One shared contact (`contacts` message): a vCard in JSON."""

    name: WaCardName | None = None
    org: WaCardOrg | None = None
    phones: list[WaCardPhone] = Field(default_factory=list)
    emails: list[WaCardEmail] = Field(default_factory=list)
    urls: list[WaCardUrl] = Field(default_factory=list)
    addresses: list[WaCardAddress] = Field(default_factory=list)
    birthday: str | None = None


class WaReplyChoice(_Wire):
    """The button or list row a customer chose."""

    id: str
    title: str = ""
    description: str | None = None


class WaFlowReply(_Wire):
    """`nfm_reply`: a WhatsApp Flow (or address message) answer; `response_json` is a JSON string."""

    name: str | None = None
    body: str | None = None
    response_json: str | None = None


class WaInteractiveType(WireEnum):
    """What kind of answer an `interactive` message is."""

    BUTTON_REPLY = "button_reply"
    LIST_REPLY = "list_reply"
    NFM_REPLY = "nfm_reply"
    UNKNOWN = "unknown"


class WaInteractive(_Wire):
    type: WaInteractiveType
    button_reply: WaReplyChoice | None = None
    list_reply: WaReplyChoice | None = None
    nfm_reply: WaFlowReply | None = None


class WaButton(_Wire):
    """A template quick-reply button press."""

    text: str = ""
    payload: str | None = None


class WaReaction(_Wire):
    message_id: str | None = None
    emoji: str | None = None  # empty or absent: the reaction was removed


class WaOrderItem(_Wire):
    product_retailer_id: str
    quantity: float = 1
    item_price: float | None = None
    currency: str | None = None


class WaOrder(_Wire):
    catalog_id: str | None = None
    text: str | None = None
    product_items: list[WaOrderItem] = Field(default_factory=list)


class WaReferral(_Wire):
    """Click-to-WhatsApp ad (or post) the customer came from."""

    source_url: str | None = None
    source_id: str | None = None
    source_type: str | None = None
    headline: str | None = None
    body: str | None = None
    media_type: str | None = None
    ctwa_clid: str | None = None


class WaReferredProduct(_Wire):
    catalog_id: str | None = None
    product_retailer_id: str | None = None


class WaContext(_Wire):
    """`context`: the message replied to, forwarding markers, a product asked about."""

    from_: str | None = Field(default=None, alias="from")
    id: str | None = None
    forwarded: bool = False
    frequently_forwarded: bool = False
    referred_product: WaReferredProduct | None = None


# `system` notices that a customer's WhatsApp identity changed: a new phone number (which also gives a new
# BSUID), or a new BSUID alone. Either may come without `from`: the customer is then named only inside.
class WaSystemType(WireEnum):
    """A `system` notice's `type`: the customer changed phone number, or only their BSUID."""

    USER_CHANGED_NUMBER = "user_changed_number"
    USER_CHANGED_USER_ID = "user_changed_user_id"
    UNKNOWN = "unknown"


IDENTITY_CHANGES = frozenset({WaSystemType.USER_CHANGED_NUMBER, WaSystemType.USER_CHANGED_USER_ID})


class WaSystem(_Wire):
    """`system`: `user_changed_number` (new `wa_id`) or `user_changed_user_id` (new BSUID only); both carry
    the new `user_id` / `parent_user_id` and the `previous_user_id` / `previous_parent_user_id`."""

    type: WaSystemType | None = None
    body: str | None = None
    wa_id: str | None = None
    user_id: str | None = None
    parent_user_id: str | None = None
    previous_user_id: str | None = None
    previous_parent_user_id: str | None = None

    @property
    def is_identity_change(self) -> bool:
        """A notice that the customer's phone number or BSUID changed."""
        return self.type in IDENTITY_CHANGES


class WaError(_Wire):
    code: int | None = None
    title: str | None = None
    message: str | None = None
    details: str | None = None  # older payloads put it here, newer ones in `error_data`
    error_data: dict[str, Any] | None = None

    @property
    def explanation(self) -> str | None:
        """Meta's longer explanation, when given."""
        value = (self.error_data or {}).get("details") or self.details
        return str(value) if value else None


class WaMessageType(WireEnum):
    """`messages[].type`; a type Meta adds later parses as `UNKNOWN` and keeps its name."""

    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    DOCUMENT = "document"
    STICKER = "sticker"
    LOCATION = "location"
    CONTACTS = "contacts"
    INTERACTIVE = "interactive"
    BUTTON = "button"
    REACTION = "reaction"
    ORDER = "order"
    SYSTEM = "system"
    EDIT = "edit"
    REVOKE = "revoke"
    REQUEST_WELCOME = "request_welcome"
    UNSUPPORTED = "unsupported"
    UNKNOWN = "unknown"


class WaStatusValue(WireEnum):
    """`statuses[].status`; `played` is a voice note listened to."""

    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    PLAYED = "played"
    FAILED = "failed"
    UNKNOWN = "unknown"


class WaMessageContent(_Wire):
    """What a message says, by `type` (shared by messages and the new content of an `edit`)."""

    type: WaMessageType = WaMessageType.UNKNOWN
    context: WaContext | None = None
    text: WaText | None = None
    image: WaMedia | None = None
    audio: WaMedia | None = None
    video: WaMedia | None = None
    document: WaMedia | None = None
    sticker: WaMedia | None = None
    location: WaLocation | None = None
    contacts: list[WaContactCard] | None = None
    interactive: WaInteractive | None = None
    button: WaButton | None = None
    reaction: WaReaction | None = None
    order: WaOrder | None = None
    referral: WaReferral | None = None
    system: WaSystem | None = None
    errors: list[WaError] = Field(default_factory=list)

    @property
    def media(self) -> WaMedia | None:
        """The media object of a media message (by its `type`), else None."""
        if self.type in ("image", "audio", "video", "document", "sticker"):
            media = getattr(self, self.type)
            return media if isinstance(media, WaMedia) else None
        return None


class WaEdit(_Wire):
    original_message_id: str | None = None
    message: WaMessageContent | None = None


class WaRevoke(_Wire):
    original_message_id: str | None = None


class WaInboundMessage(WaMessageContent):
    """One `value.messages[]` item."""

    id: str
    from_: str | None = Field(default=None, alias="from")
    from_user_id: str | None = None
    timestamp: str
    type: WaMessageType
    edit: WaEdit | None = None
    revoke: WaRevoke | None = None

    @property
    def customer_key(self) -> str | None:
        """The customer's id: the phone `wa_id` when present, else the BSUID."""
        return self.from_ or self.from_user_id

    @property
    def previous_ids(self) -> tuple[str, ...]:
        """Every id this message names its customer by *before* an identity change (or simply: its sender)."""
        ids = [self.from_, self.from_user_id]
        if self.system is not None and self.system.is_identity_change:
            ids += [self.system.previous_user_id, self.system.previous_parent_user_id]
        return tuple(dict.fromkeys(each for each in ids if each))

    @property
    def new_ids(self) -> tuple[str, ...]:
        """The ids an identity change gives the customer (new phone `wa_id`, new BSUID); else none."""
        if self.system is None or not self.system.is_identity_change:
            return ()
        ids = [self.system.wa_id, self.system.user_id]
        return tuple(dict.fromkeys(each for each in ids if each))


def customer_of(item: dict[str, Any]) -> str | None:
    """The customer a raw `messages[]` item is about, read defensively: `from`, `from_user_id`, else the
    ids inside an identity-change `system` object (previous ones first: the conversation is theirs)."""
    for key in ("from", "from_user_id"):
        if isinstance(item.get(key), str) and item[key]:
            return str(item[key])
    system = item.get("system")
    if isinstance(system, dict):
        for key in ("previous_user_id", "wa_id", "user_id"):
            if isinstance(system.get(key), str) and system[key]:
                return str(system[key])
    return None


class WaStatus(_Wire):
    """One `value.statuses[]` item."""

    id: str
    status: WaStatusValue
    timestamp: str
    recipient_id: str | None = None
    recipient_user_id: str | None = None
    errors: list[dict[str, Any]] = Field(default_factory=list)
    biz_opaque_callback_data: str | None = None


class WebhookValue(_Wire):
    """`entry[].changes[].value`; items stay raw here and are validated one by one downstream."""

    messaging_product: str | None = None
    metadata: WaMetadata
    contacts: list[dict[str, Any]] = Field(default_factory=list)
    messages: list[dict[str, Any]] = Field(default_factory=list)
    statuses: list[dict[str, Any]] = Field(default_factory=list)
    errors: list[dict[str, Any]] = Field(default_factory=list)


class WebhookChange(_Wire):
    field: str
    value: dict[str, Any]


class WebhookEntry(_Wire):
    id: str
    changes: list[WebhookChange] = Field(default_factory=list)


class WebhookPayload(_Wire):
    """The whole POST body of a Meta webhook."""

    object: str
    entry: list[WebhookEntry] = Field(default_factory=list)


def is_bsuid(customer_id: str) -> bool:
    """Whether a customer id is a BSUID (`US.13491208655302741918`: country, dot, digits) rather than a
    phone number (`wa_id`, digits only): the one rule every path uses to tell the two apart."""
    return "." in customer_id


def customer_id_type(customer_id: str) -> Literal["Phone", "Opaque"]:
    """The Open Messaging `idType` of a customer id: `Phone` for a phone number, `Opaque` for a BSUID."""
    return "Opaque" if is_bsuid(customer_id) else "Phone"
