"""Contact with context: one-tap links with the artisan's consent per channel, cards for
order requests and exchange replies, and a buyer's enquiry without an account arriving
as a conversation for the artisan (honeypot, throttle, validation)."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import translation

from hub.errors import HirfaError
from hub.services import phone_normalise
from registry import selectors, services
from rooms.models import Membership, Message, Room
from rooms.selectors import message_frame
from tests.registry.conftest import jpeg, wilaya

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_throttles():
    cache.clear()


@pytest.fixture
def tray(amina):
    services.census_update(user=amina, phone="0555 12 34 56", whatsapp="+213 661 22 33 44",
                           contact_email="amina@example.org", public_channels=["whatsapp", "email"])
    return services.product_create(user=amina, title="Plateau en cuivre", price_dzd=12000, photos=[jpeg()])


@pytest.mark.parametrize(
    ("number", "international"),
    [("0555 12 34 56", "213555123456"), ("+213 661 22 33 44", "213661223344"), ("00213555123456", "213555123456"),
     ("05-55-12-34-56", "213555123456"), ("abc", ""), ("12", "")],
)
def test_phone_numbers_become_international(number, international):
    assert phone_normalise(number) == international


def test_contact_links_only_for_the_channels_made_public(tray, amina):
    links = {c.channel: c.href for c in selectors.contact_links(selectors.census_of(user=amina))}
    assert links == {"whatsapp": "https://wa.me/213661223344", "email": "mailto:amina@example.org"}


def test_the_product_page_links_whatsapp_and_shares(tray, client):
    html = client.get(reverse("registry_product", args=[tray.pk])).content.decode()
    assert 'href="https://wa.me/213661223344?text=' in html
    assert "tel:" not in html  # the phone was not made public
    assert 'class="share-box"' in html and 'property="og:title"' in html
    assert "Made by hand in" in html or "13 Tlemcen" in html


def test_an_exchange_reply_opens_the_room_with_the_posts_card(amina, yacine):
    post = services.exchange_post(user=amina, kind="offer", material="copper", quantity="20", unit="kg",
                                  wilaya_id=wilaya(13).pk, price_dzd=3000)
    with translation.override("en"):
        room = services.exchange_reply(user=yacine, post_id=post.pk)
    assert room == services.exchange_reply(user=yacine, post_id=post.pk)
    (message,) = Message.objects.filter(room=room)
    card = message_frame(message).card
    assert card is not None and card.kind == "exchange_post" and "20" in card.title
    assert "13 Tlemcen" in card.detail and card.detail.endswith("Farther away")  # yacine lives in Oran
    with pytest.raises(HirfaError):
        services.exchange_reply(user=amina, post_id=post.pk)


def enquire(client, product, **fields):
    data = {"name": "Lamia", "contact": "lamia@example.org", "text": "Livrez-vous à Alger ?", "key": "k1"}
    data.update(fields)
    return client.post(reverse("registry_product_enquiry", args=[product.pk]), data)


def test_an_enquiry_without_an_account_arrives_as_a_conversation_with_the_card(tray, amina):
    response = enquire(Client(), tray)
    assert response.status_code == 302
    room = Room.objects.get(memberships__user=amina, kind="group")
    assert list(Membership.objects.filter(room=room).values_list("user__username", flat=True)) == ["amina"]
    (message,) = Message.objects.filter(room=room)
    frame = message_frame(message)
    assert frame.author is None and frame.text == "Livrez-vous à Alger ?"
    assert frame.card is not None and frame.card.kind == "enquiry" and frame.card.title == "Plateau en cuivre"
    assert "Lamia" in frame.card.detail and "lamia@example.org" in frame.card.detail
    assert amina.notifications.filter(kind="enquiry").count() == 1
    # The same form sent twice (a double tap) is one conversation.
    enquire(Client(), tray)
    assert Room.objects.filter(memberships__user=amina, kind="group").count() == 1


def test_a_robot_filling_the_honeypot_is_thanked_and_nothing_is_stored(tray, amina):
    response = enquire(Client(), tray, website="http://spam.example")
    assert response.status_code == 302
    assert not Room.objects.filter(memberships__user=amina, kind="group").exists()


@pytest.mark.parametrize(
    ("field", "value"), [("name", ""), ("contact", "not an address"), ("text", ""), ("text", "x" * 1001)]
)
def test_a_bad_enquiry_is_refused_and_stores_nothing(tray, amina, field, value):
    enquire(Client(), tray, **{field: value})
    assert not Room.objects.filter(memberships__user=amina, kind="group").exists()


def test_enquiries_are_throttled_per_address(tray):
    client = Client()
    codes = [enquire(client, tray, key=f"k{i}").status_code for i in range(6)]
    assert codes == [302] * 5 + [429]


def test_a_phone_number_is_enough_to_be_answered(tray, amina):
    enquire(Client(), tray, contact="0770 11 22 33")
    message = Message.objects.get(room__memberships__user=amina, room__kind="group")
    assert "+213770112233" in message.card["detail"]


def test_no_enquiry_about_a_hidden_or_missing_product(tray):
    assert Client().post(reverse("registry_product_enquiry", args=[tray.pk + 99]), {}).status_code == 404


def test_a_new_product_is_published_on_save_unless_kept_as_a_draft(amina):
    client = Client()
    client.force_login(amina)
    page = client.get(reverse("registry_product_new")).content.decode()
    assert 'name="status" value="published"' in page and "<select id=\"status\"" not in page
    client.post(reverse("registry_product_new"), {"title": "Sinia", "status": "published"})
    client.post(reverse("registry_product_new"), {"title": "Brouillon", "status": "draft"})
    # A form sent without a status (Enter in a field) publishes: the service's default.
    client.post(reverse("registry_product_new"), {"title": "Mibkhara"})
    statuses = dict(amina.products.values_list("title", "status"))
    assert statuses == {"Sinia": "published", "Brouillon": "draft", "Mibkhara": "published"}


def test_photos_are_reordered_described_and_removed(amina):
    product = services.product_create(user=amina, title="Tapis", making_days=20,
                                      photos=[jpeg(color="red"), jpeg(color="green"), jpeg(color="blue")])
    red, green, blue = product.photos.all()
    client = Client()
    client.force_login(amina)
    client.post(reverse("registry_product_edit", args=[product.pk]), {
        "title": "Tapis", "availability": "in_stock", "status": "published", "making_days": "20",
        f"position_{red.pk}": "3", f"position_{green.pk}": "1", f"position_{blue.pk}": "2",
        f"alt_{green.pk}": "Le tapis déplié, motifs du Djebel Amour", f"remove_{blue.pk}": "1",
    })
    photos = list(product.photos.all())
    assert [p.pk for p in photos] == [green.pk, red.pk]
    assert photos[0].alt_text == "Le tapis déplié, motifs du Djebel Amour"
    html = Client().get(reverse("registry_product", args=[product.pk])).content.decode()
    assert 'alt="Le tapis déplié, motifs du Djebel Amour"' in html and "20" in html
    other = services.product_create(user=amina, title="Autre", photos=[jpeg()])
    with pytest.raises(HirfaError):
        services.product_photos_arrange(user=amina, product_id=product.pk, order=[other.photos.get().pk])
    with pytest.raises(HirfaError):
        services.product_create(user=amina, title="Trop long", making_days=400)


def test_the_artisans_answers_reach_the_buyer_by_e_mail_once_and_at_his_link(tray, amina, mailoutbox):
    from datetime import timedelta

    from django.utils import timezone

    from rooms.services import message_post

    buyer = Client()
    response = enquire(buyer, tray, text="Livrez-vous à Alger ?")
    link = response["Location"]
    assert link.startswith("/enquiries/")
    page = buyer.get(link)
    assert page.status_code == 200 and "Livrez-vous à Alger ?" in page.content.decode()
    assert page["Cache-Control"] == "private, no-store"
    room = Room.objects.get(memberships__user=amina, kind="group")
    message_post(user=amina, room_id=room.pk, client_id="a1", text="Oui, en 3 jours.")
    message_post(user=amina, room_id=room.pk, client_id="a2", text="Livraison 800 DA.")
    # Not while she is still writing: one e-mail for both lines.
    assert services.enquiry_replies_mail() == 0 and mailoutbox == []
    later = timezone.now() + services.ENQUIRY_MAIL_QUIET + timedelta(seconds=1)
    assert services.enquiry_replies_mail(now=later) == 1
    (mail,) = mailoutbox
    assert mail.to == ["lamia@example.org"] and "Amina" in mail.subject and "Plateau en cuivre" in mail.subject
    assert "Oui, en 3 jours." in mail.body and "Livraison 800 DA." in mail.body
    assert "http://testserver" + link in mail.body
    assert services.enquiry_replies_mail(now=later) == 0 and len(mailoutbox) == 1  # exactly once
    # The buyer reads the answers at his link and writes again: a message in her room, not mailed back.
    assert "Livraison 800 DA." in buyer.get(link).content.decode()
    buyer.post(link, {"text": "Parfait, je prends.", "key": "b1"})
    buyer.post(link, {"text": "Parfait, je prends.", "key": "b1"})  # a double tap
    mine = Message.objects.filter(room=room, author__isnull=True).order_by("seq")
    assert [m.text for m in mine] == ["Livrez-vous à Alger ?", "Parfait, je prends."]
    assert amina.notifications.filter(kind="enquiry").count() == 2
    assert services.enquiry_replies_mail(now=later + timedelta(minutes=5)) == 0 and len(mailoutbox) == 1


def test_a_forged_or_altered_conversation_link_finds_nothing(tray):
    link = enquire(Client(), tray)["Location"]
    assert Client().get(link[:-2] + "xx/").status_code == 404
    assert Client().get("/enquiries/1/").status_code == 404


def test_a_buyer_who_left_a_phone_number_is_sent_no_e_mail(tray, amina, mailoutbox):
    from datetime import timedelta

    from django.utils import timezone

    from rooms.services import message_post

    link = enquire(Client(), tray, contact="0770 11 22 33")["Location"]
    room = Room.objects.get(memberships__user=amina, kind="group")
    message_post(user=amina, room_id=room.pk, client_id="a1", text="Je vous appelle.")
    assert services.enquiry_replies_mail(now=timezone.now() + timedelta(hours=1)) == 0 and mailoutbox == []
    assert "Je vous appelle." in Client().get(link).content.decode()


def test_a_refused_enquiry_names_the_field_at_fault_for_the_page_to_focus(tray):
    client = Client()
    response = enquire(client, tray, contact="not an address")
    page = client.get(response["Location"]).content.decode()
    assert 'data-field="contact"' in page and 'class="flash-error"' in page


def test_an_enquirys_notification_says_who_asked_about_which_piece_and_leads_to_the_conversation(tray, amina):
    from frontend.selectors import notifications_recent, push_text

    enquire(Client(), tray)
    room = Room.objects.get(memberships__user=amina, kind="group")
    with translation.override("fr"):
        [item] = [i for i in notifications_recent(user=amina) if i.kind == "enquiry"]
        note = amina.notifications.get(kind="enquiry")
        push = push_text(note.kind, note.data)
    assert "Lamia" in item.text and "Plateau en cuivre" in item.text and "Livrez-vous" in item.text
    assert item.href == reverse("room", args=[room.pk])
    assert push.body == item.text and push.url == item.href
