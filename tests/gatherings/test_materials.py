"""A gathering's materials: photos and PDFs its hosts attach, told by their content, capped,
and handed out only to those who see the gathering."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from gatherings import services
from gatherings.models import Material
from hub.errors import ErrorCode, HirfaError
from tests.gatherings.test_views import client_for

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def png(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (180, 90, 40)).save(out, format="PNG")
    return out.getvalue()


def _refused(**kw) -> HirfaError:
    with pytest.raises(HirfaError) as err:
        services.material_add(**kw)
    return err.value


def test_a_host_adds_a_photo_and_a_pdf_told_by_their_content(schedule, karim):
    g = schedule(title="Le tournage")
    photo = services.material_add(user=karim, gathering_id=g.pk, upload=png(), title="La pièce finie")
    pdf = services.material_add(user=karim, gathering_id=g.pk, upload=PDF, title="Les étapes")
    assert (photo.kind, photo.content_type) == ("photo", "image/png")
    assert (pdf.kind, pdf.content_type, pdf.size) == ("pdf", "application/pdf", len(PDF))
    assert pdf.file.open("rb").read() == PDF


def test_what_is_neither_a_photo_nor_a_clean_pdf_is_refused(schedule, karim, amina):
    g = schedule()
    base = {"user": karim, "gathering_id": g.pk}
    assert _refused(**base, upload=b"GIF89a not really").code == ErrorCode.INVALID
    assert _refused(**base, upload=b"MZ\x90\x00 an executable").code == ErrorCode.INVALID
    assert _refused(**base, upload=PDF[:-7]).code == ErrorCode.INVALID  # no end-of-file marker
    scripted = PDF.replace(b"/Pages 2 0 R", b"/OpenAction << /S /JavaScript /JS (app.alert(1)) >>")
    assert _refused(**base, upload=scripted).code == ErrorCode.INVALID
    big = PDF[:-6] + b" " * (services.MATERIAL_PDF_MAX_BYTES) + b"%%EOF\n"
    assert _refused(**base, upload=big).code == ErrorCode.TOO_LONG
    assert _refused(user=amina, gathering_id=g.pk, upload=png()).code == ErrorCode.FORBIDDEN
    assert not Material.objects.exists()


def test_a_gathering_holds_a_bounded_number_of_materials(schedule, karim, monkeypatch):
    monkeypatch.setattr(services, "MAX_MATERIALS", 2)
    g = schedule()
    for _ in range(2):
        services.material_add(user=karim, gathering_id=g.pk, upload=PDF)
    assert _refused(user=karim, gathering_id=g.pk, upload=PDF).code == ErrorCode.LIMIT_REACHED


def test_only_those_who_see_the_gathering_download_and_hosts_remove(schedule, karim, amina, omar):
    g = schedule()
    pdf = services.material_add(user=karim, gathering_id=g.pk, upload=PDF, title="Les étapes")
    url = f"/gatherings/{g.pk}/materials/{pdf.pk}"
    got = client_for(amina).get(url)
    assert got.status_code == 200 and b"".join(got.streaming_content) == PDF
    assert got["Content-Type"] == "application/pdf" and got["Cache-Control"] == "private, no-store"
    assert got["Content-Disposition"] == "attachment"
    assert client_for(omar).get(url).status_code == 404  # a members-only gathering of a room he is not in
    assert client_for(amina).get(f"/gatherings/{g.pk + 1}/materials/{pdf.pk}").status_code == 404
    with pytest.raises(HirfaError):
        services.material_delete(user=amina, material_id=pdf.pk)
    services.material_delete(user=karim, material_id=pdf.pk)
    assert not Material.objects.exists()


@pytest.mark.parametrize("lang", ["ar", "fr", "kab"])
def test_the_page_lists_materials_and_its_hosts_upload_there(schedule, karim, amina, lang):
    from django.core.files.uploadedfile import SimpleUploadedFile

    g = schedule()
    host = client_for(karim, lang)
    page = host.get(f"/gatherings/{g.pk}/").content.decode()
    assert 'id="materials"' in page and 'name="file"' in page
    r = host.post(f"/gatherings/{g.pk}/materials", {"title": "Les étapes", "file": SimpleUploadedFile("x.pdf", PDF)})
    assert r.status_code == 302 and Material.objects.count() == 1
    bad = host.post(f"/gatherings/{g.pk}/materials", {"file": SimpleUploadedFile("x.pdf", b"not a pdf")}, follow=True)
    assert bad.status_code == 200 and Material.objects.count() == 1
    member = client_for(amina, lang).get(f"/gatherings/{g.pk}/").content.decode()
    material = Material.objects.get()
    assert f"/gatherings/{g.pk}/materials/{material.pk}" in member and "Les étapes" in member
    assert 'name="file"' not in member and "remove-material" not in member
    delete = f"/gatherings/{g.pk}/materials/{material.pk}/delete"
    assert client_for(amina, lang).post(delete).status_code == 403
    assert host.post(delete).status_code == 302 and not Material.objects.exists()
    assert client_for(amina, lang).post(
        f"/gatherings/{g.pk}/materials", {"file": SimpleUploadedFile("x.pdf", PDF)}
    ).status_code == 403


def test_a_photo_gets_a_small_thumbnail_the_page_loads_lazily(
    schedule, karim, amina, omar, django_capture_on_commit_callbacks
):
    g = schedule()
    photo = services.material_add(user=karim, gathering_id=g.pk, upload=png(1280, 960), title="La pièce finie")
    pdf = services.material_add(user=karim, gathering_id=g.pk, upload=PDF)
    assert (photo.thumbnail_width, photo.thumbnail_height) == (320, 240) and not pdf.thumbnail
    url = f"/gatherings/{g.pk}/materials/{photo.pk}/thumbnail"
    got = client_for(amina).get(url)
    assert got.status_code == 200 and got["Cache-Control"] == "private, no-store"
    assert Image.open(io.BytesIO(b"".join(got.streaming_content))).size == (320, 240)
    assert client_for(omar).get(url).status_code == 404
    assert client_for(amina).get(f"/gatherings/{g.pk}/materials/{pdf.pk}/thumbnail").status_code == 404
    page = client_for(amina).get(f"/gatherings/{g.pk}/").content.decode()
    assert f'src="{url}"' in page and 'loading="lazy"' in page and 'height="120"' in page
    assert f'href="/gatherings/{g.pk}/materials/{photo.pk}"' in page  # the tap opens the photo itself
    names = (photo.file.name, photo.thumbnail.name)
    storage = photo.file.storage
    with django_capture_on_commit_callbacks(execute=True):
        services.material_delete(user=karim, material_id=photo.pk)
    assert not any(storage.exists(n) for n in names)
