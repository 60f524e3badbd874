"""Account forms: they check the shape of the input; `hub.services` decides and writes."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.password_validation import (
    password_validators_help_text_html,
    validate_password,
)
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.utils.translation import gettext_lazy as _

from hub.errors import HirfaError
from hub.models import TRADE_ICON_DEFAULT, ArtisanProfile, Trade, User, Wilaya
from hub.selectors import DomainTrades, trades_by_domain, wilayas_in_force


class WilayaChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Wilaya) -> str:  # type: ignore[override]
        return obj.label


def _trade_choices(groups: list[DomainTrades]) -> list[tuple[str, list[tuple[int, str]]]]:
    return [(group.domain.name, [(trade.pk, trade.name) for trade in group.trades]) for group in groups]


class TradeCheckboxes(forms.CheckboxSelectMultiple):
    """Trades to tick, each drawn with its icon (decorative: its name is the label)."""

    option_template_name = "hub/widgets/trade_option.html"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.icons: dict[int, str] = {}

    def trades_set(self, trades: list[Trade]) -> None:
        self.icons = {trade.pk: trade.icon_name for trade in trades}

    def create_option(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        option = super().create_option(*args, **kwargs)
        option["icon"] = self.icons.get(option["value"], TRADE_ICON_DEFAULT)
        return option


class ProfileFieldsMixin(forms.Form):
    """The fields that sign-up and the profile page share."""

    display_name = forms.CharField(label=_("Display name"), max_length=80)
    wilaya = WilayaChoiceField(
        label=_("Wilaya"), queryset=Wilaya.objects.none(), empty_label=_("Choose your wilaya")
    )
    trades = forms.TypedMultipleChoiceField(
        label=_("Trades"),
        coerce=int,
        widget=TradeCheckboxes,
        help_text=_("Choose one or more; you join their rooms."),
    )
    languages = forms.MultipleChoiceField(
        label=_("Languages you write"),
        choices=ArtisanProfile.Language.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Built per form so names follow the active language and new rows appear.
        self.fields["wilaya"].queryset = wilayas_in_force()  # type: ignore[attr-defined]
        groups = trades_by_domain()
        self.fields["trades"].choices = _trade_choices(groups)  # type: ignore[attr-defined]
        self.fields["trades"].widget.trades_set([t for group in groups for t in group.trades])  # type: ignore[attr-defined]

    # A service's field name -> this form's field, where they differ.
    service_fields: dict[str, str] = {}

    def add_service_error(self, error: HirfaError) -> None:
        """Show a refusal from a service next to the field it names (else on the form)."""
        field = error.details.get("field")
        field = self.service_fields.get(field, field) if isinstance(field, str) else None
        self.add_error(field if field in self.fields else None, error.message)


class SignupForm(ProfileFieldsMixin):
    """Sign-up in four steps (the template groups the fields): name and password; trades;
    wilaya; how to log in (a phone number, an e-mail, a username: any one of them)."""

    username = forms.CharField(
        label=_("Username (optional)"),
        max_length=150,
        required=False,
        validators=[UnicodeUsernameValidator()],
        help_text=_("Letters, digits and @ . + - _ only; others mention you with @username. Left empty, one is made from your name."),
        widget=forms.TextInput(attrs={"autocomplete": "username", "autocapitalize": "none"}),
    )
    email = forms.EmailField(
        label=_("E-mail (optional)"), required=False, widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )
    phone = forms.CharField(
        label=_("Phone number"),
        max_length=20,
        required=False,
        help_text=_("To log in with your phone number instead of a username."),
        widget=forms.TextInput(attrs={"autocomplete": "tel", "inputmode": "tel", "dir": "ltr"}),
    )
    password1 = forms.CharField(
        label=_("Password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validators_help_text_html(),
    )
    password2 = forms.CharField(
        label=_("Password again"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    field_order = [
        "display_name",
        "password1",
        "password2",
        "trades",
        "wilaya",
        "phone",
        "email",
        "username",
        "languages",
    ]
    STEPS = (
        ("display_name", "password1", "password2"),
        ("trades",),
        ("wilaya",),
        ("phone", "email", "username", "languages"),
    )

    def steps(self) -> list[list[forms.BoundField]]:
        return [[self[name] for name in step] for step in self.STEPS]

    def clean_username(self) -> str:
        username: str = self.cleaned_data["username"].strip()
        if username and User.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError(_("This username is taken."))
        return username

    service_fields = {"password": "password1"}

    def clean_phone(self) -> str:
        from hub.services import phone_normalise

        phone: str = self.cleaned_data["phone"].strip()
        if phone and not phone_normalise(phone):
            raise forms.ValidationError(_("This is not a phone number."))
        return phone

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        password = data.get("password1")
        if password and data.get("password2") and password != data["password2"]:
            self.add_error("password2", _("The two passwords differ."))
        elif password:
            candidate = User(username=data.get("username", ""), email=data.get("email", ""))
            try:
                validate_password(password, user=candidate)
            except forms.ValidationError as exc:
                self.add_error("password1", exc)
        return data


class ProfileForm(ProfileFieldsMixin):
    bio = forms.CharField(
        label=_("Short bio"), max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 4})
    )
    avatar = forms.FileField(
        label=_("Avatar"),
        required=False,
        help_text=_("JPEG, PNG, WebP or GIF, at most 2 MB."),
        widget=forms.ClearableFileInput(attrs={"accept": "image/jpeg,image/png,image/webp,image/gif"}),
    )

    field_order = ["display_name", "wilaya", "trades", "languages", "bio", "avatar"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["trades"].required = False

    @classmethod
    def initial_for(cls, profile: ArtisanProfile | None) -> dict[str, Any]:
        if profile is None:
            return {}
        return {
            "display_name": profile.display_name,
            "wilaya": profile.wilaya_id,
            "trades": list(profile.trades.values_list("pk", flat=True)),
            "languages": profile.languages,
            "bio": profile.bio,
            "avatar": profile.avatar,
        }

