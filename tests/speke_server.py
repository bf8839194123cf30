"""A SPEKE v2 key server on loopback, written from the AWS SPEKE v2 API description and the
CPIX 2.3 schema with its own XML and crypto code (none of Mediaplane's): it answers a CPIX
request with a fresh key for each ContentKey, encrypted for the requester's certificate
when the request carries one (document key RSA-OAEP, MAC key and content keys AES-256-CBC,
HMAC-SHA512 ValueMAC), and fills each DRMSystem's PSSH and signalling. Errors as AWS lists
them: 422 with a message."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import os
import threading
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

CPIX = "urn:dashif:org:cpix"
PSKC = "urn:ietf:params:xml:ns:keyprov:pskc"
DS = "http://www.w3.org/2000/09/xmldsig#"
ENC = "http://www.w3.org/2001/04/xmlenc#"
WIDEVINE = "edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"
PLAYREADY = "9a04f079-9840-4286-ab92-e65be0885f95"


def pssh_box(system_id: str, kid: bytes, data: bytes, version: int = 0) -> bytes:
    body = bytes([version, 0, 0, 0]) + uuid.UUID(system_id).bytes
    if version == 1:
        body += (1).to_bytes(4, "big") + kid
    body += len(data).to_bytes(4, "big") + data
    return (8 + len(body)).to_bytes(4, "big") + b"pssh" + body


@dataclass
class SpekeServer:
    """Records the keys it handed out (``keys``: KID bytes → key) and each request."""

    keys: dict[bytes, bytes] = field(default_factory=dict)
    requests: list[bytes] = field(default_factory=list)
    fail_with: tuple[int, str] | None = None

    def start(self) -> str:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.requests.append(body)
                status, text = outer.answer(body, self.headers.get("X-Speke-Version"))
                data = text.encode()
                self.send_response(status)
                self.send_header(
                    "Content-Type", "application/xml" if status == 200 else "text/plain"
                )
                self.send_header("X-Speke-Version", "2.0")
                self.send_header("X-Speke-User-Agent", "mediaplane-test-key-server")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/speke/v2.0/copyProtection"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, body: bytes, version: str | None) -> tuple[int, str]:
        if self.fail_with is not None:
            return self.fail_with
        if version != "2.0":
            return 422, "Unsupported SPEKE version"
        root = ET.fromstring(body)
        if not root.get("contentId"):
            return 422, "Missing CPIX@contentId"
        if root.get("version") != "2.3":
            return 422, "Unsupported CPIX@version"
        schemes = set()
        for ck in root.iter(f"{{{CPIX}}}ContentKey"):
            scheme = ck.get("commonEncryptionScheme")
            if not scheme:
                return 422, f"Missing ContentKey@commonEncryptionScheme for KID {ck.get('kid')}"
            schemes.add(scheme)
        if len(schemes) > 1:
            return 422, "Non compliant ContentKey@commonEncryptionScheme combination"
        sealer = None
        cert_el = root.find(f"{{{CPIX}}}DeliveryDataList/{{{CPIX}}}DeliveryData")
        if cert_el is not None:
            sealer = self._seal_for(cert_el)
        for ck in root.iter(f"{{{CPIX}}}ContentKey"):
            kid = uuid.UUID(ck.get("kid") or "").bytes
            key = self.keys.setdefault(kid, os.urandom(16))
            secret = ET.SubElement(ET.SubElement(ck, f"{{{CPIX}}}Data"), f"{{{PSKC}}}Secret")
            if sealer is None:
                ET.SubElement(secret, f"{{{PSKC}}}PlainValue").text = base64.b64encode(key).decode()
            else:
                sealer(secret, key)
        for sysel in root.iter(f"{{{CPIX}}}DRMSystem"):
            kid = uuid.UUID(sysel.get("kid") or "").bytes
            sid = (sysel.get("systemId") or "").lower()
            if sid == WIDEVINE:
                box = pssh_box(WIDEVINE, kid, b"\x12\x10" + kid + b"H\xe3\xdc\x95\x9b\x06")
            elif sid == PLAYREADY:
                box = pssh_box(PLAYREADY, kid, b"<WRMHEADER/>".ljust(32, b" "), version=1)
            else:
                return 422, f"Unsupported systemId {sid}"
            for child in list(sysel):
                tag = child.tag.split("}")[1]
                if tag == "PSSH":
                    child.text = base64.b64encode(box).decode()
                elif tag == "ContentProtectionData":
                    cpd = f'<cenc:pssh xmlns:cenc="urn:mpeg:cenc:2013">{base64.b64encode(box).decode()}</cenc:pssh>'
                    child.text = base64.b64encode(cpd.encode()).decode()
                elif tag == "HLSSignalingData":
                    tag_text = f'#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://{kid.hex()}"'
                    child.text = base64.b64encode(tag_text.encode()).decode()
        return 200, ET.tostring(root, encoding="unicode")

    def _seal_for(self, dd: ET.Element):  # type: ignore[no-untyped-def]
        der = base64.b64decode(
            dd.findtext(f"{{{CPIX}}}DeliveryKey/{{{DS}}}X509Data/{{{DS}}}X509Certificate") or ""
        )
        public = x509.load_der_x509_certificate(der).public_key()
        oaep = asym_padding.OAEP(
            mgf=asym_padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None
        )
        doc_key, mac_key = os.urandom(32), os.urandom(64)

        def cbc(key: bytes, plain: bytes) -> bytes:
            iv = os.urandom(16)
            p = padding.PKCS7(128).padder()
            e = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
            return iv + e.update(p.update(plain) + p.finalize()) + e.finalize()

        def encrypted(parent: ET.Element, tag: str, alg: str, blob: bytes) -> None:
            el = ET.SubElement(parent, tag)
            ET.SubElement(el, f"{{{ENC}}}EncryptionMethod", {"Algorithm": alg})
            cd = ET.SubElement(el, f"{{{ENC}}}CipherData")
            ET.SubElement(cd, f"{{{ENC}}}CipherValue").text = base64.b64encode(blob).decode()

        secret = ET.SubElement(
            ET.SubElement(ET.SubElement(dd, f"{{{CPIX}}}DocumentKey"), f"{{{CPIX}}}Data"),
            f"{{{PSKC}}}Secret",
        )
        encrypted(
            secret,
            f"{{{PSKC}}}EncryptedValue",
            ENC + "rsa-oaep-mgf1p",
            public.encrypt(doc_key, oaep),
        )  # type: ignore[union-attr]
        mac = ET.SubElement(
            dd,
            f"{{{CPIX}}}MACMethod",
            {"Algorithm": "http://www.w3.org/2001/04/xmldsig-more#hmac-sha512"},
        )
        encrypted(mac, f"{{{PSKC}}}MACKey", ENC + "aes256-cbc", cbc(doc_key, mac_key))

        def seal(secret_el: ET.Element, key: bytes) -> None:
            blob = cbc(doc_key, key)
            encrypted(secret_el, f"{{{PSKC}}}EncryptedValue", ENC + "aes256-cbc", blob)
            digest = hmac.new(mac_key, blob, hashlib.sha512).digest()
            ET.SubElement(secret_el, f"{{{PSKC}}}ValueMAC").text = base64.b64encode(digest).decode()

        return seal
