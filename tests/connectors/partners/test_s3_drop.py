"""S3 partner drop against moto's real server: multipart streaming, share links, revoke, failures."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import httpx
import pytest
from aiobotocore.session import get_session

from connectors.errors import BadRequest, NotFound
from connectors.s3 import MIN_PART_SIZE, S3Drop
from connectors.transfer import DeliveryItem, DeliveryReceipt

from .conftest import chunks_of

MIB = 1024 * 1024


def payload(size: int) -> bytes:
    block = hashlib.sha256(str(size).encode()).digest() * 2048  # 64 KiB
    return (block * (size // len(block) + 1))[:size]


async def read_object(moto, bucket: str, key: str) -> tuple[bytes, dict[str, object]]:
    async with get_session().create_client(
        "s3", region_name=moto.region, endpoint_url=moto.url,
        aws_access_key_id=moto.access_key_id, aws_secret_access_key=moto.secret_access_key,
    ) as s3:  # fmt: skip
        answer = await s3.get_object(Bucket=bucket, Key=key)
        async with answer["Body"] as body:
            return await body.read(), answer


async def list_uploads(moto, bucket: str) -> list[object]:
    async with get_session().create_client(
        "s3", region_name=moto.region, endpoint_url=moto.url,
        aws_access_key_id=moto.access_key_id, aws_secret_access_key=moto.secret_access_key,
    ) as s3:  # fmt: skip
        return list((await s3.list_multipart_uploads(Bucket=bucket)).get("Uploads", []))


async def test_a_file_larger_than_a_part_goes_up_in_parts_and_arrives_whole(moto, bucket, s3_drop) -> None:
    data = payload(2 * MIN_PART_SIZE + 12_345)
    item = DeliveryItem(name="hero.mp4", size=len(data), content_type="video/mp4")

    receipt = await s3_drop.deliver(item, chunks_of(data))

    stored, answer = await read_object(moto, bucket, "retailer-a/inbox/hero.mp4")
    assert hashlib.sha256(stored).hexdigest() == receipt.sha256 == hashlib.sha256(data).hexdigest()
    assert answer["ContentType"] == "video/mp4"
    assert str(answer["ETag"]).strip('"').endswith("-3")  # three parts: a multipart upload
    assert (receipt.kind, receipt.destination, receipt.location, receipt.size) == (
        "s3", "Retailer A", "retailer-a/inbox/hero.mp4", len(data),
    )  # fmt: skip
    assert s3_drop.peak_part_bytes == MIN_PART_SIZE  # never more than one part in hand


async def test_a_small_file_is_one_put_and_its_share_link_serves_it(moto, bucket, s3_drop) -> None:
    data = payload(300_000)
    receipt = await s3_drop.deliver(DeliveryItem(name="logo.png", size=len(data)), chunks_of(data))

    assert receipt.share_url is not None
    async with httpx.AsyncClient() as partner:
        shared = await partner.get(receipt.share_url.get_secret_value())
    assert shared.status_code == 200 and shared.content == data
    assert "X-Amz-Expires=604800" in receipt.share_url.get_secret_value()
    assert receipt.share_expires_at is not None and receipt.share_expires_at > datetime.now(UTC)
    assert "Amz" not in repr(receipt)  # the link is a bearer credential: never printed


async def test_revoke_deletes_the_object_and_the_link_then_fails(moto, bucket, s3_drop) -> None:
    data = payload(1000)
    receipt = await s3_drop.deliver(DeliveryItem(name="cut.mp4", size=len(data)), chunks_of(data))
    assert await s3_drop.exists(receipt)

    await s3_drop.revoke(receipt)
    await s3_drop.revoke(receipt)  # twice is harmless

    assert not await s3_drop.exists(receipt)
    async with httpx.AsyncClient() as partner:
        shared = await partner.get(receipt.share_url.get_secret_value())
    assert shared.status_code == 404


async def test_a_fresh_share_link_can_be_signed_for_a_delivered_object(moto, bucket, s3_settings) -> None:
    async with S3Drop(s3_settings(share_link_ttl=3600)) as drop:
        receipt = await drop.deliver(DeliveryItem(name="a.jpg", size=3), chunks_of(b"abc"))
        again = await drop.share_link(receipt)
    assert "X-Amz-Expires=3600" in again.share_url.get_secret_value()
    assert again.location == receipt.location


async def test_a_missing_bucket_is_a_not_found_naming_the_operation(s3_settings) -> None:
    async with S3Drop(s3_settings(bucket="no-such-bucket-here")) as drop:
        with pytest.raises(NotFound) as caught:
            await drop.deliver(DeliveryItem(name="a.jpg", size=3), chunks_of(b"abc"))
    error = caught.value
    assert (error.vendor, error.status, error.method) == ("s3", 404, "PutObject")
    assert str(error).startswith(
        "s3 PutObject s3://no-such-bucket-here/retailer-a/inbox/a.jpg -> 404: NoSuchBucket"
    )


async def test_a_stream_shorter_than_declared_publishes_nothing_and_leaves_no_parts(
    moto, bucket, s3_drop
) -> None:
    data = payload(2 * MIN_PART_SIZE)
    item = DeliveryItem(name="short.mp4", size=len(data) + 10)
    with pytest.raises(BadRequest, match="had 10485760 bytes, 10485770 were declared"):
        await s3_drop.deliver(item, chunks_of(data))
    never = DeliveryReceipt(
        kind="s3",
        destination="Retailer A",
        location="retailer-a/inbox/short.mp4",
        delivered_at=datetime.now(UTC),
    )
    assert not await s3_drop.exists(never)
    assert await list_uploads(moto, bucket) == []


async def test_a_file_name_with_a_path_is_refused_before_any_call(s3_drop) -> None:
    with pytest.raises(ValueError, match="not a plain file name"):
        await s3_drop.deliver(DeliveryItem(name="../other-partner/x", size=1), chunks_of(b"x"))


async def test_a_stream_longer_than_declared_is_refused_too(s3_drop) -> None:
    with pytest.raises(BadRequest, match="were declared; nothing was published"):
        await s3_drop.deliver(DeliveryItem(name="long.jpg", size=3), chunks_of(b"abcdef"))
    never = DeliveryReceipt(
        kind="s3",
        destination="Retailer A",
        location="retailer-a/inbox/long.jpg",
        delivered_at=datetime.now(UTC),
    )
    assert not await s3_drop.exists(never)
