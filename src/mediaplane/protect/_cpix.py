"""CPIX 2.3 (DASH-IF Content Protection Information Exchange): the model, render and parse.

The document an operator hands a commercial multi-DRM service (or gets from one): content
keys with KIDs, the DRM systems' signalling for each KID (PSSH, ``ContentProtection``
data, HLS key tags), which key covers which tracks (``ContentKeyUsageRule``), and — when a
recipient's certificate is given — the keys encrypted for it:

* a random 256-bit document key, RSA-OAEP (MGF1/SHA-1) under the recipient's public key
  (``DeliveryData/DocumentKey``); a random 512-bit MAC key AES-256-CBC under the document
  key (``MACMethod/MACKey``);
* each content key AES-256-CBC under the document key (IV first), with an HMAC-SHA512 of
  IV‖ciphertext under the MAC key (``pskc:ValueMAC``), checked before anything is decrypted.

Parsing is bounded (size, element count) and refuses DTDs and entities outright.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mediaplane import media

from ._errors import ProtectError

__all__ = [
    "COMMON_SYSTEM_ID",
    "PLAYREADY_SYSTEM_ID",
    "WIDEVINE_SYSTEM_ID",
    "CpixDocument",
    "CpixError",
    "CpixKey",
    "DrmSignal",
]

NS = {
    "cpix": "urn:dashif:org:cpix",
    "pskc": "urn:ietf:params:xml:ns:keyprov:pskc",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "enc": "http://www.w3.org/2001/04/xmlenc#",
}
for _prefix, _uri in NS.items():
    ET.register_namespace(_prefix, _uri)

#: DRM system ids (the DASH-IF registry).
COMMON_SYSTEM_ID = str(media.COMMON_SYSTEM_ID)  # W3C Common PSSH (ClearKey)
WIDEVINE_SYSTEM_ID = "edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"
PLAYREADY_SYSTEM_ID = "9a04f079-9840-4286-ab92-e65be0885f95"

_AES256_CBC = "http://www.w3.org/2001/04/xmlenc#aes256-cbc"
_RSA_OAEP = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
_HMAC_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha512"
_OAEP = asym_padding.OAEP(mgf=asym_padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)

MAX_CPIX_BYTES = 1024 * 1024
MAX_ELEMENTS = 20_000
#: Our track types and CPIX's intendedTrackType, with the pixel bounds of the video ones
#: (SD below 1280×720, HD from it: :data:`mediaplane.protect.HD_MIN_HEIGHT`).
_TRACK_TYPES = {"sd": "SD", "hd": "HD", "audio": "AUDIO", "all": "ALL"}
_HD_PIXELS = 1280 * 720


class CpixError(ProtectError):
    """A CPIX document we cannot read or trust: malformed, too big, a DTD, a bad KID, a MAC
    that does not match, a key we cannot decrypt."""

    code = "invalid_cpix"


@dataclass(frozen=True)
class CpixKey:
    """One content key; ``key`` is None in a request (the key provider fills it in)."""

    kid: bytes
    key: bytes | None = field(default=None, repr=False)
    track_type: str = "all"
    scheme: str | None = None  # commonEncryptionScheme: cenc, cbcs, …
    explicit_iv: bytes | None = None

    @property
    def value(self) -> bytes:
        """The key itself; :class:`CpixError` when the document did not carry it."""
        if self.key is None:
            raise CpixError(f"ContentKey {self.kid.hex()} has no key (pskc:PlainValue)")
        return self.key


@dataclass(frozen=True)
class DrmSignal:
    """One DRM system's signalling for one KID, as the key provider wrote it."""

    system_id: str  # UUID string, lowercase
    kid: bytes
    pssh: bytes | None = None  # a whole 'pssh' box
    content_protection_data: bytes | None = None
    hls_signaling: dict[str, bytes] = field(default_factory=dict)  # playlist → tag bytes


@dataclass(frozen=True)
class CpixDocument:
    content_id: str
    keys: list[CpixKey]
    systems: list[DrmSignal] = field(default_factory=list)

    def render(self, recipient: x509.Certificate | None = None, *, request: bool = False) -> bytes:
        """The document as CPIX 2.3 XML; keys encrypted for ``recipient`` if given.

        :param request: a SPEKE request: each DRM system's signalling elements are written
            empty (the key provider fills them), and ``recipient`` is our own certificate,
            for the key provider to encrypt its answer with (no document key of ours).
        """
        root = ET.Element(_q("cpix", "CPIX"), {"contentId": self.content_id, "version": "2.3"})
        sealer = _Sealer(recipient) if recipient is not None else None
        if sealer is not None:
            dlist = ET.SubElement(root, _q("cpix", "DeliveryDataList"))
            if request:
                _delivery_key(ET.SubElement(dlist, _q("cpix", "DeliveryData")), sealer.cert)
            else:
                sealer.delivery_data(dlist)
        klist = ET.SubElement(root, _q("cpix", "ContentKeyList"))
        for k in self.keys:
            attrs = {"kid": _uuid(k.kid)}
            if k.scheme:
                attrs["commonEncryptionScheme"] = k.scheme
            if k.explicit_iv is not None:
                attrs["explicitIV"] = _b64(k.explicit_iv)
            el = ET.SubElement(klist, _q("cpix", "ContentKey"), attrs)
            if k.key is not None:
                secret = ET.SubElement(ET.SubElement(el, _q("cpix", "Data")), _q("pskc", "Secret"))
                if sealer is None:
                    ET.SubElement(secret, _q("pskc", "PlainValue")).text = _b64(k.key)
                else:
                    sealer.seal_into(secret, k.key)
        if self.systems:
            slist = ET.SubElement(root, _q("cpix", "DRMSystemList"))
            for sig in self.systems:
                el = ET.SubElement(
                    slist,
                    _q("cpix", "DRMSystem"),
                    {"kid": _uuid(sig.kid), "systemId": sig.system_id},
                )
                if request:
                    for tag in ("PSSH", "ContentProtectionData"):
                        ET.SubElement(el, _q("cpix", tag))
                    for playlist in ("media", "multiVariant"):
                        ET.SubElement(el, _q("cpix", "HLSSignalingData"), {"playlist": playlist})
                    continue
                if sig.pssh is not None:
                    ET.SubElement(el, _q("cpix", "PSSH")).text = _b64(sig.pssh)
                if sig.content_protection_data is not None:
                    ET.SubElement(el, _q("cpix", "ContentProtectionData")).text = _b64(
                        sig.content_protection_data
                    )
                for playlist, data in sorted(sig.hls_signaling.items()):
                    ET.SubElement(
                        el, _q("cpix", "HLSSignalingData"), {"playlist": playlist}
                    ).text = _b64(data)
        period = "period-0"
        ET.SubElement(
            ET.SubElement(root, _q("cpix", "ContentKeyPeriodList")),
            _q("cpix", "ContentKeyPeriod"),
            {"id": period, "index": "0"},
        )
        rules = ET.SubElement(root, _q("cpix", "ContentKeyUsageRuleList"))
        for k in self.keys:
            rule = ET.SubElement(
                rules,
                _q("cpix", "ContentKeyUsageRule"),
                {"kid": _uuid(k.kid), "intendedTrackType": _TRACK_TYPES.get(k.track_type, "ALL")},
            )
            ET.SubElement(rule, _q("cpix", "KeyPeriodFilter"), {"periodId": period})
            _filters(rule, k.track_type)
        out: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
        return out

    @classmethod
    def parse(cls, data: bytes, private_key: rsa.RSAPrivateKey | None = None) -> CpixDocument:
        """A CPIX document from ``data`` (keys decrypted with ``private_key`` if encrypted)."""
        root = _parse_xml(data)
        if root.tag != _q("cpix", "CPIX"):
            raise CpixError("the document's root is not cpix:CPIX")
        opener = _Opener.from_document(root, private_key)
        track_by_kid: dict[bytes, str] = {}
        for rule in root.iterfind("cpix:ContentKeyUsageRuleList/cpix:ContentKeyUsageRule", NS):
            ours = {v: k for k, v in _TRACK_TYPES.items()}
            track_by_kid[_kid(rule.get("kid"))] = ours.get(
                (rule.get("intendedTrackType") or "").upper(), "all"
            )
        keys = []
        for el in root.iterfind("cpix:ContentKeyList/cpix:ContentKey", NS):
            kid = _kid(el.get("kid"))
            secret = el.find("cpix:Data/pskc:Secret", NS)
            key = None if secret is None else opener.open(secret)
            if key is not None and len(key) != 16:
                raise CpixError(f"content key {_uuid(kid)} is {len(key)} bytes, not 16")
            iv = el.get("explicitIV")
            keys.append(
                CpixKey(
                    kid=kid,
                    key=key,
                    track_type=track_by_kid.get(kid, "all"),
                    scheme=el.get("commonEncryptionScheme"),
                    explicit_iv=_unb64(iv, "explicitIV") if iv else None,
                )
            )
        systems = []
        for el in root.iterfind("cpix:DRMSystemList/cpix:DRMSystem", NS):
            pssh = el.findtext("cpix:PSSH", None, NS)
            cpd = el.findtext("cpix:ContentProtectionData", None, NS)
            hls = {
                h.get("playlist") or "media": _unb64(h.text or "", "HLSSignalingData")
                for h in el.iterfind("cpix:HLSSignalingData", NS)
                if (h.text or "").strip()
            }
            systems.append(
                DrmSignal(
                    system_id=str(_uuid_of(el.get("systemId"), "systemId")),
                    kid=_kid(el.get("kid")),
                    pssh=_unb64(pssh, "PSSH") if pssh and pssh.strip() else None,
                    content_protection_data=_unb64(cpd, "ContentProtectionData")
                    if cpd and cpd.strip()
                    else None,
                    hls_signaling=hls,
                )
            )
        return cls(content_id=root.get("contentId") or "", keys=keys, systems=systems)


def _filters(rule: ET.Element, track_type: str) -> None:
    if track_type == "audio":
        ET.SubElement(rule, _q("cpix", "AudioFilter"))
    elif track_type == "sd":
        ET.SubElement(rule, _q("cpix", "VideoFilter"), {"maxPixels": str(_HD_PIXELS - 1)})
    elif track_type == "hd":
        ET.SubElement(rule, _q("cpix", "VideoFilter"), {"minPixels": str(_HD_PIXELS)})


class _Sealer:
    """Encrypts keys for one recipient (see the module docstring)."""

    def __init__(self, recipient: x509.Certificate) -> None:
        public = recipient.public_key()
        if not isinstance(public, rsa.RSAPublicKey) or public.key_size < 2048:
            raise CpixError("the recipient's certificate must hold an RSA key of 2048 bits or more")
        self.cert = recipient
        self.public = public
        self.document_key = secrets.token_bytes(32)
        self.mac_key = secrets.token_bytes(64)

    def delivery_data(self, dlist: ET.Element) -> None:
        dd = ET.SubElement(dlist, _q("cpix", "DeliveryData"))
        _delivery_key(dd, self.cert)
        secret = ET.SubElement(
            ET.SubElement(ET.SubElement(dd, _q("cpix", "DocumentKey")), _q("cpix", "Data")),
            _q("pskc", "Secret"),
        )
        _encrypted(
            secret,
            _q("pskc", "EncryptedValue"),
            _RSA_OAEP,
            self.public.encrypt(self.document_key, _OAEP),
        )
        mac = ET.SubElement(dd, _q("cpix", "MACMethod"), {"Algorithm": _HMAC_SHA512})
        _encrypted(
            mac, _q("pskc", "MACKey"), _AES256_CBC, _cbc_seal(self.document_key, self.mac_key)
        )

    def seal_into(self, secret: ET.Element, key: bytes) -> None:
        blob = _cbc_seal(self.document_key, key)
        _encrypted(secret, _q("pskc", "EncryptedValue"), _AES256_CBC, blob)
        ET.SubElement(secret, _q("pskc", "ValueMAC")).text = _b64(
            hmac.digest(self.mac_key, blob, "sha512")
        )


class _Opener:
    """Decrypts the keys of a document encrypted for us (or reads plain ones)."""

    def __init__(self, document_key: bytes | None, mac_key: bytes | None) -> None:
        self.document_key = document_key
        self.mac_key = mac_key

    @classmethod
    def from_document(cls, root: ET.Element, private_key: rsa.RSAPrivateKey | None) -> _Opener:
        dd = root.find("cpix:DeliveryDataList/cpix:DeliveryData", NS)
        if dd is None:
            return cls(None, None)
        if private_key is None:
            raise CpixError("the document's keys are encrypted and no private key was given")
        value = dd.find("cpix:DocumentKey/cpix:Data/pskc:Secret/pskc:EncryptedValue", NS)
        if value is None:
            raise CpixError("DeliveryData has no encrypted DocumentKey")
        try:
            document_key = private_key.decrypt(_cipher_value(value, _RSA_OAEP), _OAEP)
        except ValueError:
            raise CpixError("the document key does not decrypt with our private key") from None
        mac_el = dd.find("cpix:MACMethod/pskc:MACKey", NS)
        mac_key = (
            _cbc_open(document_key, _cipher_value(mac_el, _AES256_CBC))
            if mac_el is not None
            else None
        )
        if len(document_key) != 32:
            raise CpixError("the document key is not 256 bits")
        return cls(document_key, mac_key)

    def open(self, secret: ET.Element) -> bytes | None:
        plain = secret.findtext("pskc:PlainValue", None, NS)
        if plain is not None:
            return _unb64(plain, "PlainValue")
        value = secret.find("pskc:EncryptedValue", NS)
        if value is None:
            return None
        if self.document_key is None:
            raise CpixError("an encrypted content key, but the document has no DeliveryData")
        blob = _cipher_value(value, _AES256_CBC)
        if self.mac_key is not None:
            mac = secret.findtext("pskc:ValueMAC", None, NS)
            if mac is None or not hmac.compare_digest(
                _unb64(mac, "ValueMAC"), hmac.digest(self.mac_key, blob, "sha512")
            ):
                raise CpixError("a content key's MAC does not match: the document was altered")
        return _cbc_open(self.document_key, blob)


def _delivery_key(dd: ET.Element, cert: x509.Certificate) -> None:
    x509data = ET.SubElement(ET.SubElement(dd, _q("cpix", "DeliveryKey")), _q("ds", "X509Data"))
    ET.SubElement(x509data, _q("ds", "X509Certificate")).text = _b64(
        cert.public_bytes(serialization.Encoding.DER)
    )


def _encrypted(parent: ET.Element, tag: str, algorithm: str, blob: bytes) -> None:
    el = ET.SubElement(parent, tag)
    ET.SubElement(el, _q("enc", "EncryptionMethod"), {"Algorithm": algorithm})
    ET.SubElement(ET.SubElement(el, _q("enc", "CipherData")), _q("enc", "CipherValue")).text = _b64(
        blob
    )


def _cipher_value(el: ET.Element, algorithm: str) -> bytes:
    method = el.find("enc:EncryptionMethod", NS)
    if method is None or method.get("Algorithm") != algorithm:
        raise CpixError(f"an encrypted value does not use {algorithm}")
    text = el.findtext("enc:CipherData/enc:CipherValue", None, NS)
    if not text:
        raise CpixError("an encrypted value has no CipherValue")
    return _unb64(text, "CipherValue")


def _cbc_seal(key: bytes, plain: bytes) -> bytes:
    iv = secrets.token_bytes(16)
    padder = padding.PKCS7(128).padder()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return iv + enc.update(padder.update(plain) + padder.finalize()) + enc.finalize()


def _cbc_open(key: bytes, blob: bytes) -> bytes:
    if len(blob) < 32 or len(blob) % 16:
        raise CpixError("an AES-256-CBC value has the wrong length")
    dec = Cipher(algorithms.AES(key), modes.CBC(blob[:16])).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(dec.update(blob[16:]) + dec.finalize()) + unpadder.finalize()
    except ValueError:
        raise CpixError("an AES-256-CBC value does not decrypt") from None


def _parse_xml(data: bytes) -> ET.Element:
    if len(data) > MAX_CPIX_BYTES:
        raise CpixError(f"a CPIX document is at most {MAX_CPIX_BYTES // 1024} KiB")
    head = data[:4096].upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in data.upper():
        raise CpixError("a CPIX document may not carry a DTD or entities")
    try:
        root = ET.fromstring(data)  # 1 MiB at most, and no entities: bounded
    except ET.ParseError as exc:
        raise CpixError(f"the CPIX document is not well-formed XML: {exc}") from None
    if sum(1 for _ in root.iter()) > MAX_ELEMENTS:
        raise CpixError(f"a CPIX document has at most {MAX_ELEMENTS} elements")
    return root


def _q(prefix: str, name: str) -> str:
    return f"{{{NS[prefix]}}}{name}"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise CpixError(f"{what} is not base64") from None


def _uuid(kid: bytes) -> str:
    return str(uuid.UUID(bytes=kid))


def _uuid_of(text: str | None, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(text or "")
    except ValueError:
        raise CpixError(f"{what} {text!r} is not a UUID") from None


def _kid(text: str | None) -> bytes:
    return _uuid_of(text, "kid").bytes
