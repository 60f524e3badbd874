"""A member's masterclasses and materials in his data export and his account's deletion
(`gatherings.hooks`, the registry's rules: docs/registry.md, "Privacy")."""

from __future__ import annotations

from gatherings import services
from gatherings.models import Gathering, Material
from hub import personal_data
from tests.gatherings.test_materials import PDF, png


def test_the_export_carries_the_masterclasses_he_presents_and_the_materials_he_uploaded(
    schedule, karim, amina, lina
):
    taught = schedule(title="Le tournage", masterclass=True, presenter_ids=[amina.pk, lina.pk])
    schedule(title="Autre", masterclass=True, presenter_ids=[lina.pk])
    services.gathering_update(user=karim, gathering_id=taught.pk, host_ids=[karim.pk, amina.pk])
    photo = services.material_add(user=amina, gathering_id=taught.pk, upload=png(), title="La pièce finie")
    services.material_add(user=karim, gathering_id=taught.pk, upload=PDF, title="Les étapes")

    data = personal_data.account_export(user=amina)

    assert [(g["gathering"], g["title"]) for g in data["masterclasses_presented"]] == [(taught.pk, "Le tournage")]
    assert data["masterclasses_presented"][0]["room"] == taught.room_id
    (material,) = data["materials_uploaded"]
    assert (material["material"], material["gathering"], material["kind"], material["title"]) == (
        photo.pk, taught.pk, "photo", "La pièce finie"
    )
    assert material["content_type"] == "image/png" and material["size"] == photo.size
    assert personal_data.account_export(user=karim)["masterclasses_presented"] == []


def test_deleting_his_account_ends_his_part_and_leaves_the_gathering_its_materials(schedule, karim, amina, lina):
    taught = schedule(title="Le tournage", masterclass=True, presenter_ids=[amina.pk, lina.pk])
    services.gathering_update(user=karim, gathering_id=taught.pk, host_ids=[karim.pk, amina.pk])
    photo = services.material_add(user=amina, gathering_id=taught.pk, upload=png(), title="La pièce finie")
    name = photo.file.name

    personal_data.account_delete(user=amina)

    taught = Gathering.objects.get(pk=taught.pk)
    assert list(taught.presenters.all()) == [lina]
    # Like an attachment in a room: the material stays for those who come, with no uploader.
    kept = Material.objects.get(pk=photo.pk)
    assert kept.uploaded_by_id is None and kept.file.storage.exists(name)
