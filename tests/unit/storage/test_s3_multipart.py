"""Server-side S3 composition: the SigV4 signer, the part planner, and UploadPartCopy
against the real SeaweedFS server."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from mediaplane.storage import S3Store, StorageError, open_store
from mediaplane.storage._s3_multipart import (
    EMPTY_SHA256,
    MIN_PART,
    Credentials,
    MultipartClient,
    MultipartError,
    Piece,
    PlannedPart,
    canonical_query,
    compose,
    plan_parts,
    sign,
)

if TYPE_CHECKING:
    from tests.seaweed import SeaweedS3

MIB = 1 << 20
# The example identity of AWS's SigV4 documentation ("Examples of signature calculations").
AWS_EXAMPLE = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
AWS_EXAMPLE_DATE = datetime(2013, 5, 24, tzinfo=UTC)


# -- SigV4 --------------------------------------------------------------------------------


def test_sigv4_matches_the_aws_documented_get_object_example() -> None:
    """AWS S3 docs, "Example: GET Object": the first 10 bytes of examplebucket/test.txt."""
    headers = sign(
        "GET",
        httpx.URL("https://examplebucket.s3.amazonaws.com/test.txt"),
        {"Range": "bytes=0-9"},
        credentials=AWS_EXAMPLE,
        region="us-east-1",
        payload=EMPTY_SHA256,
        when=AWS_EXAMPLE_DATE,
    )
    assert headers["x-amz-date"] == "20130524T000000Z"
    assert headers["host"] == "examplebucket.s3.amazonaws.com"
    assert headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


def test_sigv4_matches_botocore_for_an_upload_part_copy() -> None:
    """A query string, a copy-source header, a port and a session token: the same
    signature as botocore's own S3 signer computes for the same request."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotoCredentials

    creds = Credentials("AKID", "secret/key+x", "session-token")
    url = httpx.URL("http://127.0.0.1:8333/bkt/p/assets/a%3Db/source?partNumber=3&uploadId=x~y%2Bz")
    copy = {
        "x-amz-copy-source": "/bkt/p/~staged/uploads/u/00000000000000000000",
        "x-amz-copy-source-range": "bytes=0-5242879",
    }
    ours = sign("PUT", url, copy, credentials=creds, region="eu-west-1", when=AWS_EXAMPLE_DATE)
    boto_headers = {k: v for k, v in ours.items() if k != "authorization"}
    request = AWSRequest(method="PUT", url=str(url), headers=boto_headers, data=b"")
    request.context["timestamp"] = "20130524T000000Z"
    auth = S3SigV4Auth(BotoCredentials("AKID", "secret/key+x", "session-token"), "s3", "eu-west-1")
    canonical = auth.canonical_request(request)
    signature = auth.signature(auth.string_to_sign(request, canonical), request)
    assert ours["authorization"].endswith(f"Signature={signature}")
    assert ours["x-amz-security-token"] == "session-token"


def test_canonical_query_encodes_and_sorts() -> None:
    assert canonical_query({"uploads": ""}) == "uploads="
    assert canonical_query({"uploadId": "a b+c/d~", "partNumber": "2"}) == (
        "partNumber=2&uploadId=a%20b%2Bc%2Fd~"
    )


# -- planning ------------------------------------------------------------------------------


def _shape(plan: list[PlannedPart]) -> list[tuple[str, list[tuple[str, int, int]]]]:
    return [
        ("copy" if p.copy else "upload", [(x.path, x.start, x.end) for x in p.pieces]) for p in plan
    ]


def test_plan_copies_every_big_part_and_the_small_tail() -> None:
    plan = plan_parts([("a", 8 * MIB), ("b", 8 * MIB), ("c", 100)])
    assert _shape(plan) == [
        ("copy", [("a", 0, 8 * MIB)]),
        ("copy", [("b", 0, 8 * MIB)]),
        ("copy", [("c", 0, 100)]),
    ]


def test_plan_reads_back_a_small_part_in_the_middle_with_its_neighbour() -> None:
    # An interrupted PATCH left a 1 MiB part between two full ones.
    plan = plan_parts([("a", 8 * MIB), ("b", MIB), ("c", 8 * MIB), ("d", 2 * MIB)])
    assert _shape(plan) == [
        ("copy", [("a", 0, 8 * MIB)]),
        # topping up to 5 MiB would leave 4 MiB of c, too small to copy: all of c is read
        ("upload", [("b", 0, MIB), ("c", 0, 8 * MIB)]),
        ("copy", [("d", 0, 2 * MIB)]),
    ]
    # A bigger neighbour is split: only what tops the small part up to 5 MiB is read.
    plan = plan_parts([("b", MIB), ("c", 20 * MIB)])
    assert _shape(plan) == [
        ("upload", [("b", 0, MIB), ("c", 0, 4 * MIB)]),
        ("copy", [("c", 4 * MIB, 20 * MIB)]),
    ]


def test_plan_gathers_small_patches_into_parts_of_at_least_5_mib() -> None:
    sources = [(f"p{i}", MIB) for i in range(12)]
    plan = plan_parts(sources)
    assert [p.size for p in plan] == [5 * MIB, 5 * MIB, 2 * MIB]
    assert all(p.size >= MIN_PART for p in plan[:-1])
    assert [not p.copy for p in plan] == [True, True, True]
    assert sum(p.size for p in plan) == 12 * MIB


@pytest.mark.parametrize(
    "sizes",
    [
        [1],
        [MIN_PART - 1, 1, MIN_PART + 1, 3, 7 * MIB, MIB, MIB, 9 * MIB],
        [MIB] * 4 + [6 * MIB] + [MIB] * 7,
        [8 * MIB] * 5 + [123],
    ],
)
def test_plan_is_a_valid_multipart_upload(sizes: list[int]) -> None:
    sources = [(f"s{i}", n) for i, n in enumerate(sizes)]
    plan = plan_parts(sources)
    # Every part but the last is big enough; copies are one piece; bytes are in order.
    assert all(p.size >= MIN_PART for p in plan[:-1])
    assert all(len(p.pieces) == 1 for p in plan if p.copy)
    flat = [piece for p in plan for piece in p.pieces]
    expected = 0
    for piece, nxt in zip(flat, [*flat[1:], None], strict=True):
        assert piece.size > 0
        if nxt is not None and nxt.path == piece.path:
            assert nxt.start == piece.end
    for path, size in sources:
        covered = [p for p in flat if p.path == path]
        assert covered[0].start == 0 and covered[-1].end == size
        expected += size
    assert sum(p.size for p in plan) == expected


# -- against SeaweedFS -------------------------------------------------------------------


@pytest.fixture
def s3_store(s3_env: SeaweedS3, s3_prefix: str) -> S3Store:
    store = open_store(s3_env.url(s3_prefix))
    assert isinstance(store, S3Store)
    return store


@pytest.mark.services
def test_failed_part_copy_aborts_the_multipart_upload(
    s3_env: SeaweedS3, s3_store: S3Store, boto: Any
) -> None:
    s3_store.area("staged").put_bytes("uploads/f/00000000000000000000", os.urandom(MIN_PART))
    key = f"{s3_store.prefix}/assets/f/source"
    client = MultipartClient(
        s3_env.endpoint,
        s3_env.bucket,
        s3_env.region,
        Credentials(s3_env.access_key, s3_env.secret_key),
    )
    plan = [
        PlannedPart((Piece("~staged/uploads/f/00000000000000000000", 0, MIN_PART),), copy=True),
        PlannedPart((Piece("~staged/uploads/f/missing", 0, 10),), copy=True),
    ]
    with client, pytest.raises(MultipartError, match="UploadPartCopy") as caught:
        compose(client, key, plan, lambda p: b"", full_path=lambda p: f"{s3_store.prefix}/{p}")
    assert isinstance(caught.value, StorageError)
    assert caught.value.code == "NoSuchKey"
    left = boto.list_multipart_uploads(Bucket=s3_env.bucket, Prefix=key).get("Uploads", [])
    assert left == []  # aborted: nothing half-built stays behind
    assert not s3_store.exists("assets/f/source")


@pytest.mark.services
def test_wrong_secret_is_a_storage_error(s3_env: SeaweedS3, s3_prefix: str) -> None:
    client = MultipartClient(
        s3_env.endpoint, s3_env.bucket, s3_env.region, Credentials(s3_env.access_key, "wrong")
    )
    with client, pytest.raises(MultipartError, match="SignatureDoesNotMatch|AccessDenied"):
        client.create(f"{s3_prefix}/x")
