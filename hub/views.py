"""Account pages. Views only translate: a form checks the input, a service writes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordResetForm
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from hub import selectors, services
from hub.errors import HirfaError
from hub.forms import ProfileForm, SignupForm
from hub.models import Trade, User
from hub.throttle import client_ip, throttle_hit, too_many


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    """Create an account, sign it in and send it to its rooms."""
    if request.user.is_authenticated:
        return redirect("rooms")
    if request.method == "POST" and throttle_hit(
        "signup", client_ip(request) or "", limit=settings.HIRFA_SIGNUPS_PER_IP_HOUR, window=timedelta(hours=1)
    ):
        return too_many(request, _("Too many accounts were created from your connection. Try again in an hour."))
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user = services.artisan_register(
                username=data["username"],
                email=data["email"],
                password=data["password1"],
                display_name=data["display_name"],
                wilaya_id=data["wilaya"].pk,
                trade_ids=data["trades"],
                languages=data["languages"],
                phone=data["phone"],
            )
        except HirfaError as error:
            form.add_service_error(error)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, _("Welcome to Hirfa! You joined the rooms of your trades and wilaya."))
            if not data["username"]:
                messages.info(request, _("Your username is %(username)s.") % {"username": user.username})
            return redirect("rooms")
    trade_names = {
        str(t.pk): " ".join([t.name_fr, t.name_ar, t.name_en, t.name_ber, t.slug.replace("-", " ")])
        for t in Trade.objects.all()
    }
    return render(
        request,
        "hub/signup.html",
        {"form": form, "trade_names": trade_names, "wilaya_map": "".join(draw() for draw in SIGNUP_MAPS)},
    )


#: What draws a map of the wilayas for the sign-up's wilaya step (the registry's census map,
#: registered by the app that owns it); none: the list alone.
SIGNUP_MAPS: list[Callable[[], str]] = []


def signup_map_register(draw: Callable[[], str]) -> None:
    if draw not in SIGNUP_MAPS:
        SIGNUP_MAPS.append(draw)


class PasswordResetView(auth_views.PasswordResetView):
    """Django's reset, throttled per address (a page that says so) and per account (silently:
    the page says "sent" either way, so it tells nobody whether the address has an account)."""

    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if throttle_hit(
            "reset-ip", client_ip(request) or "", limit=settings.HIRFA_RESETS_PER_IP_HOUR, window=timedelta(hours=1)
        ):
            return too_many(request, _("Too many password reset requests from your connection. Try again in an hour."))
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: PasswordResetForm) -> HttpResponse:
        if throttle_hit(
            "reset-mail",
            form.cleaned_data["email"],
            limit=settings.HIRFA_RESET_MAILS_PER_ACCOUNT_HOUR,
            window=timedelta(hours=1),
        ):
            return redirect(self.get_success_url())
        return super().form_valid(form)


@login_required
@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    """Show and edit the signed-in artisan's own profile, avatar included."""
    user: User = request.user  # type: ignore[assignment]
    current = selectors.profile_of(user=user)
    if request.method == "POST":
        form = ProfileForm(request.POST, request.FILES)
        if form.is_valid():
            data = form.cleaned_data
            try:
                # The avatar first: a refused image leaves the whole profile as it was.
                if data["avatar"]:
                    try:
                        services.avatar_set(user=user, upload=data["avatar"])
                    except HirfaError as error:
                        error.details.setdefault("field", "avatar")
                        raise
                elif data["avatar"] is False:
                    services.avatar_clear(user=user)
                services.profile_update(
                    user=user,
                    display_name=data["display_name"],
                    wilaya_id=data["wilaya"].pk,
                    trade_ids=data["trades"],
                    languages=data["languages"],
                    bio=data["bio"],
                )
            except HirfaError as error:
                form.add_service_error(error)
            else:
                messages.success(request, _("Your profile is saved."))
                return redirect("profile")
    else:
        form = ProfileForm(initial=ProfileForm.initial_for(current))
    return render(request, "hub/profile.html", {"form": form, "profile": current})


@login_required
@require_GET
def profile_public(request: HttpRequest, username: str) -> HttpResponse:
    """Another member's profile, read-only."""
    found = selectors.public_profile(username=username)
    if found is None:
        raise Http404(_("No such member."))
    return render(request, "hub/profile_public.html", {"profile": found})
