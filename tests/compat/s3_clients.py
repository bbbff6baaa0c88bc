#!/usr/bin/env python3
"""The bucket store driven by the clients users already have: boto3 and the aws cli.

Every flow of the bucket-store issue, as those clients run it, against a running homefront
(`tests/compat.rs` starts one and runs this script; run it by hand against your own with the
arguments below). Exits non-zero at the first mismatch, naming the step.

  python3 tests/compat/s3_clients.py --endpoint http://127.0.0.1:9000 \
      --edge http://127.0.0.1:8080 --access-key KEY --secret SECRET [--bucket site]
"""
import argparse
import base64
import datetime
import hashlib
import html
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, MissingDependencyException

args = argparse.ArgumentParser()
args.add_argument("--endpoint", required=True)
args.add_argument("--edge", required=True)
args.add_argument("--access-key", required=True)
args.add_argument("--secret", required=True)
args.add_argument("--bucket", default="site")
opts = args.parse_args()
B = opts.bucket

s3 = boto3.client(
    "s3",
    endpoint_url=opts.endpoint,
    aws_access_key_id=opts.access_key,
    aws_secret_access_key=opts.secret,
    region_name="us-east-1",
    config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
)
step_name = "start"


def step(name):
    global step_name
    step_name = name
    print(f"-- {name}", flush=True)


def check(cond, what):
    if not cond:
        raise AssertionError(f"{step_name}: {what}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **kw):
        return None


_no_redirect = urllib.request.build_opener(_NoRedirect)


def http(method, url, data=None, headers=None, follow=True):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with (urllib.request.urlopen if follow else _no_redirect.open)(req) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def form_post(post, filename, data, fields=None, follow=True):
    """A browser's multipart/form-data POST of a generate_presigned_post form: its fields in
    the order boto3 returns them (with `fields` changed or added), then the file, last."""
    boundary = "----compat" + os.urandom(8).hex()
    out = []
    for name, value in {**post["fields"], **(fields or {})}.items():
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
               f'Content-Type: image/jpeg\r\n\r\n'.encode() + data + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return http("POST", post["url"], b"".join(out),
                {"Content-Type": f"multipart/form-data; boundary={boundary}"}, follow=follow)


def b64(raw):
    return base64.b64encode(raw).decode()


def crc32_b64(data):
    return b64(zlib.crc32(data).to_bytes(4, "big"))


def crc32c(data):
    """CRC32C (Castagnoli), bitwise: only for a few bytes, when awscrt is not installed."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return b64((crc ^ 0xFFFFFFFF).to_bytes(4, "big"))


def status_of(fn):
    """The HTTP status of a boto3 call (its error's status when it fails)."""
    try:
        return fn()["ResponseMetadata"]["HTTPStatusCode"]
    except ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"]


def aws(*argv, ok=True):
    env = dict(
        os.environ,
        AWS_ACCESS_KEY_ID=opts.access_key,
        AWS_SECRET_ACCESS_KEY=opts.secret,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_EC2_METADATA_DISABLED="true",
    )
    p = subprocess.run(
        ["aws", "--endpoint-url", opts.endpoint, "--output", "json", *argv],
        capture_output=True, text=True, env=env,
    )
    if ok and p.returncode != 0:
        raise AssertionError(f"{step_name}: aws {' '.join(argv)} failed: {p.stderr}")
    return p


def error_code(fn):
    try:
        fn()
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


work = tempfile.mkdtemp()

step("boto3: put, head, get, list, metadata")
s3.put_object(Bucket=B, Key="compat/a.txt", Body=b"alpha", ContentType="text/plain",
              Metadata={"owner": "compat"}, CacheControl="max-age=60")
h = s3.head_object(Bucket=B, Key="compat/a.txt")
check(h["ContentLength"] == 5 and h["ContentType"] == "text/plain", h)
check(h["Metadata"] == {"owner": "compat"}, h["Metadata"])
check(h["ETag"] == '"%s"' % hashlib.md5(b"alpha").hexdigest(), h["ETag"])
check(s3.get_object(Bucket=B, Key="compat/a.txt")["Body"].read() == b"alpha", "body")
keys = [o["Key"] for o in s3.list_objects_v2(Bucket=B, Prefix="compat/")["Contents"]]
check(keys == ["compat/a.txt"], keys)

step("boto3: range and conditional GET")
r = s3.get_object(Bucket=B, Key="compat/a.txt", Range="bytes=1-3")
check(r["Body"].read() == b"lph" and r["ContentRange"] == "bytes 1-3/5", r["ContentRange"])
try:
    s3.get_object(Bucket=B, Key="compat/a.txt", IfNoneMatch=h["ETag"])
    check(False, "If-None-Match with the current ETag must be 304")
except ClientError as e:
    check(e.response["ResponseMetadata"]["HTTPStatusCode"] == 304, e.response)
check(error_code(lambda: s3.get_object(Bucket=B, Key="compat/a.txt", Range="bytes=9-")) == "InvalidRange", "416")

step("boto3: multipart upload_file (8 MiB in 5 MiB parts) and download_file")
big = os.path.join(work, "big.bin")
with open(big, "wb") as f:
    f.write(os.urandom(8 << 20))
from boto3.s3.transfer import TransferConfig
tc = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20)
s3.upload_file(big, B, "compat/big.bin", Config=tc)
h = s3.head_object(Bucket=B, Key="compat/big.bin")
check(h["ETag"].strip('"').endswith("-2"), f"multipart ETag {h['ETag']}")
back = os.path.join(work, "big.back")
s3.download_file(B, "compat/big.bin", back, Config=tc)
check(open(big, "rb").read() == open(back, "rb").read(), "downloaded bytes differ")

step("boto3: copy, tagging, batch delete")
s3.copy_object(Bucket=B, Key="compat/b.txt", CopySource={"Bucket": B, "Key": "compat/a.txt"})
s3.put_object_tagging(Bucket=B, Key="compat/b.txt",
                      Tagging={"TagSet": [{"Key": "team", "Value": "web"}]})
tags = s3.get_object_tagging(Bucket=B, Key="compat/b.txt")["TagSet"]
check(tags == [{"Key": "team", "Value": "web"}], tags)
out = s3.delete_objects(Bucket=B, Delete={"Objects": [{"Key": "compat/b.txt"}, {"Key": "compat/big.bin"}]})
check(sorted(d["Key"] for d in out["Deleted"]) == ["compat/b.txt", "compat/big.bin"], out)

step("boto3: presigned PUT with Content-Type, then GET through the edge")
url = s3.generate_presigned_url("put_object", Params={"Bucket": B, "Key": "compat/upload.json",
                                                     "ContentType": "application/json"}, ExpiresIn=300)
status, _, body = http("PUT", url, b'{"from": "python"}', {"Content-Type": "text/plain"})
check(status == 403 and b"SignatureDoesNotMatch" in body and b"content-type" in body.lower(),
      f"a different Content-Type must be refused and named: {status} {body[:300]}")
status, _, body = http("PUT", url, b'{"from": "python"}', {"Content-Type": "application/json"})
check(status == 200, f"presigned PUT: {status} {body[:300]}")
status, headers, body = http("GET", f"{opts.edge}/compat/upload.json")
check(status == 200 and body == b'{"from": "python"}', f"edge GET: {status} {body[:200]}")
check(headers.get("Content-Type") == "application/json", headers)
url = s3.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "compat/upload.json"}, ExpiresIn=60)
status, _, body = http("GET", url)
check(status == 200 and body == b'{"from": "python"}', f"presigned GET: {status}")
sig = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["X-Amz-Signature"][0]
tampered = sig[:-1] + ("0" if sig[-1] != "0" else "1")
status, _, body = http("GET", url.replace(sig, tampered))
check(status == 403 and b"SignatureDoesNotMatch" in body, f"tampered presigned GET: {status}")

step("boto3: canned ACL public-read opens anonymous reads of that object only")
s3.put_object(Bucket=B, Key="compat/public.txt", Body=b"hi all", ACL="public-read")
status, _, body = http("GET", f"{opts.endpoint}/{B}/compat/public.txt")
check(status == 200 and body == b"hi all", f"anonymous GET of a public-read object: {status}")
status, _, body = http("GET", f"{opts.endpoint}/{B}/compat/a.txt")
check(status == 403 and b"AccessDenied" in body, f"anonymous GET of a private object: {status}")

step("boto3: bucket CORS and a preflight")
s3.put_bucket_cors(Bucket=B, CORSConfiguration={"CORSRules": [{
    "AllowedOrigins": ["https://admin.example.com"], "AllowedMethods": ["PUT", "GET"],
    "AllowedHeaders": ["content-type"], "MaxAgeSeconds": 600}]})
rules = s3.get_bucket_cors(Bucket=B)["CORSRules"]
check(rules[0]["AllowedOrigins"] == ["https://admin.example.com"], rules)
status, headers, _ = http("OPTIONS", f"{opts.endpoint}/{B}/compat/x", headers={
    "Origin": "https://admin.example.com", "Access-Control-Request-Method": "PUT",
    "Access-Control-Request-Headers": "Content-Type"})
check(status == 200 and headers.get("Access-Control-Allow-Origin") == "https://admin.example.com", dict(headers))
status, _, _ = http("OPTIONS", f"{opts.endpoint}/{B}/compat/x", headers={
    "Origin": "https://evil.example", "Access-Control-Request-Method": "PUT"})
check(status == 403, f"disallowed preflight: {status}")
s3.delete_bucket_cors(Bucket=B)

step("aws cli: s3 cp (multipart), ls, sync, rm")
p = aws("s3", "cp", big, f"s3://{B}/cli/big.bin")
p = aws("s3", "ls", f"s3://{B}/cli/")
check("big.bin" in p.stdout, p.stdout)
src = os.path.join(work, "site")
os.makedirs(os.path.join(src, "css"))
for name, text in [("index.html", "<h1>hi</h1>"), ("css/app.css", "body{}")]:
    with open(os.path.join(src, name), "w") as f:
        f.write(text)
aws("s3", "sync", src, f"s3://{B}/cli/site/")
status, headers, body = http("GET", f"{opts.edge}/cli/site/css/app.css")
check(status == 200 and body == b"body{}", f"synced file through the edge: {status}")
check(headers.get("Content-Type", "").startswith("text/css"), headers)
aws("s3", "rm", "--recursive", f"s3://{B}/cli/")
p = aws("s3", "ls", f"s3://{B}/cli/", ok=False)
check("big.bin" not in p.stdout, p.stdout)

step("aws cli: versioning, a bad delete, and the restore with copy-object")
aws("s3api", "put-bucket-versioning", "--bucket", B, "--versioning-configuration", "Status=Enabled")
v = json.loads(aws("s3api", "get-bucket-versioning", "--bucket", B).stdout)
check(v.get("Status") == "Enabled", v)
for text in ["v1", "v2"]:
    path = os.path.join(work, "report.txt")
    with open(path, "w") as f:
        f.write(text)
    aws("s3", "cp", path, f"s3://{B}/compat/report.txt")
aws("s3", "rm", f"s3://{B}/compat/report.txt")
p = aws("s3api", "head-object", "--bucket", B, "--key", "compat/report.txt", ok=False)
check(p.returncode != 0 and "404" in p.stderr, p.stderr)
listed = json.loads(aws("s3api", "list-object-versions", "--bucket", B, "--prefix", "compat/report.txt").stdout)
versions = listed["Versions"]
check([x["IsLatest"] for x in versions] == [False, False], versions)
check(len(listed["DeleteMarkers"]) == 1 and listed["DeleteMarkers"][0]["IsLatest"], listed)
newest = versions[0]["VersionId"]
out = json.loads(aws("s3api", "copy-object", "--bucket", B, "--key", "compat/report.txt",
                     "--copy-source", f"{B}/compat/report.txt?versionId={newest}").stdout)
check(out.get("CopySourceVersionId") == newest, out)
got = os.path.join(work, "got.txt")
aws("s3api", "get-object", "--bucket", B, "--key", "compat/report.txt", got)
check(open(got).read() == "v2", "restored content")
older = versions[1]["VersionId"]
aws("s3api", "get-object", "--bucket", B, "--key", "compat/report.txt", "--version-id", older, got)
check(open(got).read() == "v1", "older version")
status, _, body = http("GET", f"{opts.edge}/compat/report.txt")
check(status == 200 and body == b"v2", f"restored file through the edge: {status} {body[:100]}")
aws("s3api", "delete-object", "--bucket", B, "--key", "compat/report.txt", "--version-id", older)
listed = json.loads(aws("s3api", "list-object-versions", "--bucket", B, "--prefix", "compat/report.txt").stdout)
check(older not in [x["VersionId"] for x in listed["Versions"]], listed)
aws("s3api", "put-bucket-versioning", "--bucket", B, "--versioning-configuration", "Status=Suspended")

step("boto3: default CRC32 on put, checksum mode on head/get, SHA256, CRC32C, a wrong checksum")
data = b"checksummed by default"
out = s3.put_object(Bucket=B, Key="compat/sum.txt", Body=data)
check(out.get("ChecksumCRC32") == crc32_b64(data), f"PutObject ChecksumCRC32: {out}")
check(out.get("ChecksumType") == "FULL_OBJECT", f"PutObject ChecksumType: {out}")
h = s3.head_object(Bucket=B, Key="compat/sum.txt", ChecksumMode="ENABLED")
check(h.get("ChecksumCRC32") == crc32_b64(data) and h.get("ChecksumType") == "FULL_OBJECT", h)
r = s3.get_object(Bucket=B, Key="compat/sum.txt", ChecksumMode="ENABLED")
check(r["Body"].read() == data and r.get("ChecksumCRC32") == crc32_b64(data), r)
out = s3.put_object(Bucket=B, Key="compat/sum256.txt", Body=data, ChecksumAlgorithm="SHA256")
sha = b64(hashlib.sha256(data).digest())
check(out.get("ChecksumSHA256") == sha, f"PutObject ChecksumSHA256: {out}")
h = s3.head_object(Bucket=B, Key="compat/sum256.txt", ChecksumMode="ENABLED")
check(h.get("ChecksumSHA256") == sha and "ChecksumCRC32" not in h, h)
try:
    out = s3.put_object(Bucket=B, Key="compat/sum32c.txt", Body=data, ChecksumAlgorithm="CRC32C")
except MissingDependencyException:
    print("   (CRC32C needs awscrt: sending the value computed here instead)")
    out = s3.put_object(Bucket=B, Key="compat/sum32c.txt", Body=data, ChecksumCRC32C=crc32c(data))
check(out.get("ChecksumCRC32C") == crc32c(data), f"PutObject ChecksumCRC32C: {out}")
h = s3.head_object(Bucket=B, Key="compat/sum32c.txt", ChecksumMode="ENABLED")
check(h.get("ChecksumCRC32C") == crc32c(data), h)
code = error_code(lambda: s3.put_object(Bucket=B, Key="compat/bad-sum.txt", Body=data,
                                        ChecksumCRC32=crc32_b64(b"other bytes")))
check(code == "BadDigest", f"a wrong x-amz-checksum-crc32: {code}")
check(error_code(lambda: s3.head_object(Bucket=B, Key="compat/bad-sum.txt")) == "404", "not created")

step("boto3: multipart checksums (upload_fileobj, 12 MiB in 5 MiB parts), attributes, GET partNumber")
blob = os.urandom(12 << 20)
s3.upload_fileobj(io.BytesIO(blob), B, "compat/parts.bin",
                  Config=TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20))
pieces = [blob[i:i + (5 << 20)] for i in range(0, len(blob), 5 << 20)]
composite = crc32_b64(b"".join(zlib.crc32(x).to_bytes(4, "big") for x in pieces)) + "-3"
h = s3.head_object(Bucket=B, Key="compat/parts.bin", ChecksumMode="ENABLED")
print(f"   head: ChecksumCRC32={h.get('ChecksumCRC32')} ChecksumType={h.get('ChecksumType')}")
check(h["ETag"].strip('"').endswith("-3"), h["ETag"])
if h.get("ChecksumType") == "COMPOSITE":
    check(h.get("ChecksumCRC32") == composite, f"composite CRC32 {h.get('ChecksumCRC32')} != {composite}")
else:
    check(h.get("ChecksumType") == "FULL_OBJECT" and h.get("ChecksumCRC32") == crc32_b64(blob), h)
a = s3.get_object_attributes(Bucket=B, Key="compat/parts.bin",
                             ObjectAttributes=["ETag", "Checksum", "ObjectParts", "ObjectSize"])
check(a.get("ObjectSize") == len(blob) and a.get("ETag", "").strip('"') == h["ETag"].strip('"'), a)
csum = a.get("Checksum", {})
check(csum.get("ChecksumType") == h.get("ChecksumType"), f"attributes {csum} vs head {h.get('ChecksumType')}")
check(csum.get("ChecksumCRC32", "").split("-")[0] == h["ChecksumCRC32"].split("-")[0], f"{csum} vs head")
parts = a.get("ObjectParts", {})
check(parts.get("TotalPartsCount") == 3, parts)
check([(p["PartNumber"], p["Size"]) for p in parts.get("Parts", [])] ==
      [(1, 5 << 20), (2, 5 << 20), (3, 2 << 20)], parts)
if h.get("ChecksumType") == "COMPOSITE":
    check([p.get("ChecksumCRC32") for p in parts["Parts"]] == [crc32_b64(x) for x in pieces], parts)
r = s3.get_object(Bucket=B, Key="compat/parts.bin", PartNumber=2)
check(r["Body"].read() == pieces[1], "GET partNumber=2 bytes")
check(r.get("PartsCount") == 3 and r["ResponseMetadata"]["HTTPStatusCode"] == 206, r)
check(r.get("ContentRange") == f"bytes {5 << 20}-{(10 << 20) - 1}/{12 << 20}", r.get("ContentRange"))
h = s3.head_object(Bucket=B, Key="compat/parts.bin", PartNumber=3)
check(h.get("PartsCount") == 3 and h["ContentLength"] == 2 << 20, h)
s3.delete_object(Bucket=B, Key="compat/parts.bin")

step("aws cli: put-object --checksum-algorithm SHA256, head-object --checksum-mode ENABLED")
path = os.path.join(work, "cli-sum.txt")
with open(path, "wb") as f:
    f.write(data)
out = json.loads(aws("s3api", "put-object", "--bucket", B, "--key", "compat/cli-sum.txt",
                     "--body", path, "--checksum-algorithm", "SHA256").stdout)
check(out.get("ChecksumSHA256") == sha, out)
out = json.loads(aws("s3api", "head-object", "--bucket", B, "--key", "compat/cli-sum.txt",
                     "--checksum-mode", "ENABLED").stdout)
check(out.get("ChecksumSHA256") == sha, out)

step("boto3: conditional writes (If-None-Match: *, If-Match) on put and complete")
first = s3.put_object(Bucket=B, Key="compat/once.txt", Body=b"first", IfNoneMatch="*")
try:
    s3.put_object(Bucket=B, Key="compat/once.txt", Body=b"second", IfNoneMatch="*")
    check(False, "a second If-None-Match: * put must be refused")
except ClientError as e:
    check(e.response["Error"]["Code"] == "PreconditionFailed"
          and e.response["ResponseMetadata"]["HTTPStatusCode"] == 412, e.response)
check(s3.get_object(Bucket=B, Key="compat/once.txt")["Body"].read() == b"first", "unchanged")
code = error_code(lambda: s3.put_object(Bucket=B, Key="compat/once.txt", Body=b"x", IfMatch='"0123456789abcdef0123456789abcdef"'))
check(code == "PreconditionFailed", f"If-Match with a wrong ETag: {code}")
code = error_code(lambda: s3.put_object(Bucket=B, Key="compat/never.txt", Body=b"x", IfMatch=first["ETag"]))
check(code == "NoSuchKey", f"If-Match on a missing key: {code}")
out = s3.put_object(Bucket=B, Key="compat/once.txt", Body=b"third", IfMatch=first["ETag"])
check(out["ResponseMetadata"]["HTTPStatusCode"] == 200, out)
check(s3.get_object(Bucket=B, Key="compat/once.txt")["Body"].read() == b"third", "If-Match put")
up = s3.create_multipart_upload(Bucket=B, Key="compat/once.txt")["UploadId"]
part = s3.upload_part(Bucket=B, Key="compat/once.txt", UploadId=up, PartNumber=1, Body=b"mpu")
done = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
code = error_code(lambda: s3.complete_multipart_upload(Bucket=B, Key="compat/once.txt", UploadId=up,
                                                       MultipartUpload=done, IfNoneMatch="*"))
check(code == "PreconditionFailed", f"complete with If-None-Match: * on an existing key: {code}")
check(s3.get_object(Bucket=B, Key="compat/once.txt")["Body"].read() == b"third", "unchanged by complete")
s3.abort_multipart_upload(Bucket=B, Key="compat/once.txt", UploadId=up)
up = s3.create_multipart_upload(Bucket=B, Key="compat/twice.txt")["UploadId"]
part = s3.upload_part(Bucket=B, Key="compat/twice.txt", UploadId=up, PartNumber=1, Body=b"mpu")
done = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
one = s3.complete_multipart_upload(Bucket=B, Key="compat/twice.txt", UploadId=up, MultipartUpload=done)
two = s3.complete_multipart_upload(Bucket=B, Key="compat/twice.txt", UploadId=up, MultipartUpload=done)
check(two["ResponseMetadata"]["HTTPStatusCode"] == 200 and two["ETag"] == one["ETag"], (one, two))

step("boto3: browser POST uploads (generate_presigned_post)")
post = s3.generate_presigned_post(B, "uploads/${filename}", Fields={"success_action_status": "201"},
                                  Conditions=[["content-length-range", 1, 1 << 20],
                                              {"success_action_status": "201"}], ExpiresIn=300)
photo = os.urandom(2000)
status, _, body = form_post(post, "cat photo.jpg", photo)
check(status == 201 and b"<Key>uploads/cat photo.jpg</Key>" in body, f"POST: {status} {body[:400]}")
check(s3.get_object(Bucket=B, Key="uploads/cat photo.jpg")["Body"].read() == photo, "POSTed bytes")
etag = re.search(rb"<ETag>(.*?)</ETag>", body)
etag = html.unescape(etag.group(1).decode()) if etag else None
check(etag == '"%s"' % hashlib.md5(photo).hexdigest(), f"PostResponse ETag (quoted, as S3 writes it): {etag}")
status, _, body = form_post(post, "huge.bin", b"x" * ((1 << 20) + 1))
code = re.search(rb"<Code>(.*?)</Code>", body)
print(f"   over content-length-range: {status} {code and code.group(1).decode()}")
check(status == 400 and b"<Code>EntityTooLarge</Code>" in body, f"too large: {status} {body[:400]}")
status, _, body = form_post(post, "cat.jpg", photo, fields={"key": "elsewhere/${filename}"})
check(status == 403 and b"AccessDenied" in body, f"key outside starts-with: {status} {body[:400]}")
exact = s3.generate_presigned_post(B, "uploads/exact.txt", ExpiresIn=300)
status, _, body = form_post(exact, "exact.txt", b"x", fields={"key": "uploads/other.txt"})
check(status == 403 and b"AccessDenied" in body, f"key not eq: {status} {body[:400]}")
check(error_code(lambda: s3.head_object(Bucket=B, Key="uploads/other.txt")) == "404", "refused POST stored")
done_url = "http://example.invalid/done"
post = s3.generate_presigned_post(B, "uploads/redirected.txt", Fields={"success_action_redirect": done_url},
                                  Conditions=[{"success_action_redirect": done_url}], ExpiresIn=300)
status, headers, body = form_post(post, "r.txt", b"redirected", follow=False)
loc = headers.get("Location") or ""
check(status == 303 and loc.startswith(done_url + "?"), f"redirect: {status} {loc} {body[:300]}")
q = urllib.parse.parse_qs(urllib.parse.urlsplit(loc).query)
etag = s3.head_object(Bucket=B, Key="uploads/redirected.txt")["ETag"]
check(q.get("bucket") == [B] and q.get("key") == ["uploads/redirected.txt"] and q.get("etag") == [etag], q)
# A checksum in the form (a field the policy names) is checked like a header's.
summed = b"a form with its own checksum"
value = b64(hashlib.sha256(summed).digest())
post = s3.generate_presigned_post(B, "uploads/summed.txt", Fields={"x-amz-checksum-sha256": value},
                                  Conditions=[{"x-amz-checksum-sha256": value}], ExpiresIn=300)
status, _, body = form_post(post, "summed.txt", b"not what was summed")
check(status == 400 and b"<Code>BadDigest</Code>" in body, f"form checksum mismatch: {status} {body[:400]}")
check(error_code(lambda: s3.head_object(Bucket=B, Key="uploads/summed.txt")) == "404", "mismatched POST stored")
status, _, body = form_post(post, "summed.txt", summed)
check(status == 204, f"form checksum: {status} {body[:400]}")
h = s3.head_object(Bucket=B, Key="uploads/summed.txt", ChecksumMode="ENABLED")
check(h.get("ChecksumSHA256") == value, h)
post = s3.generate_presigned_post(B, "uploads/late.txt", ExpiresIn=1)
time.sleep(2)
status, _, body = form_post(post, "late.txt", b"late")
check(status == 403 and b"AccessDenied" in body, f"expired policy: {status} {body[:400]}")

step("boto3: Object Lock (default GOVERNANCE, COMPLIANCE, legal hold)")
L = "compat-lock"
s3.create_bucket(Bucket=L, ObjectLockEnabledForBucket=True)
check(s3.get_bucket_versioning(Bucket=L).get("Status") == "Enabled", "a lock bucket is versioned")
s3.put_object_lock_configuration(Bucket=L, ObjectLockConfiguration={
    "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
cfg = s3.get_object_lock_configuration(Bucket=L)["ObjectLockConfiguration"]
check(cfg.get("ObjectLockEnabled") == "Enabled"
      and cfg.get("Rule", {}).get("DefaultRetention") == {"Mode": "GOVERNANCE", "Days": 1}, cfg)
now = datetime.datetime.now(datetime.timezone.utc)
v = s3.put_object(Bucket=L, Key="gov.txt", Body=b"governed")["VersionId"]
h = s3.head_object(Bucket=L, Key="gov.txt")
check(h.get("ObjectLockMode") == "GOVERNANCE", h)
ahead = (h["ObjectLockRetainUntilDate"] - now).total_seconds()
check(abs(ahead - 86400) < 600, f"retain until {h['ObjectLockRetainUntilDate']}, {ahead} s ahead")
code = error_code(lambda: s3.delete_object(Bucket=L, Key="gov.txt", VersionId=v))
check(code == "AccessDenied", f"deleting a GOVERNANCE version: {code}")
s3.delete_object(Bucket=L, Key="gov.txt", VersionId=v, BypassGovernanceRetention=True)
check(error_code(lambda: s3.head_object(Bucket=L, Key="gov.txt", VersionId=v)) == "404", "bypassed delete")
until = now + datetime.timedelta(hours=1)
v = s3.put_object(Bucket=L, Key="comp.txt", Body=b"compliant", ObjectLockMode="COMPLIANCE",
                  ObjectLockRetainUntilDate=until)["VersionId"]
ret = s3.get_object_retention(Bucket=L, Key="comp.txt", VersionId=v)["Retention"]
check(ret["Mode"] == "COMPLIANCE" and abs((ret["RetainUntilDate"] - until).total_seconds()) < 2, ret)
code = error_code(lambda: s3.delete_object(Bucket=L, Key="comp.txt", VersionId=v, BypassGovernanceRetention=True))
check(code == "AccessDenied", f"deleting a COMPLIANCE version with bypass: {code}")
code = error_code(lambda: s3.put_object_retention(Bucket=L, Key="comp.txt", VersionId=v, Retention={
    "Mode": "COMPLIANCE", "RetainUntilDate": now + datetime.timedelta(minutes=30)}))
check(code == "AccessDenied", f"shortening a COMPLIANCE retention: {code}")
held = s3.put_object(Bucket=L, Key="held.txt", Body=b"held")["VersionId"]
s3.put_object_legal_hold(Bucket=L, Key="held.txt", VersionId=held, LegalHold={"Status": "ON"})
check(s3.get_object_legal_hold(Bucket=L, Key="held.txt", VersionId=held)["LegalHold"]["Status"] == "ON", "hold")
code = error_code(lambda: s3.delete_object(Bucket=L, Key="held.txt", VersionId=held, BypassGovernanceRetention=True))
check(code == "AccessDenied", f"deleting a version under legal hold (governance bypassed): {code}")
out = s3.delete_object(Bucket=L, Key="comp.txt")
check(out.get("DeleteMarker") is True and out["ResponseMetadata"]["HTTPStatusCode"] in (200, 204), out)
check(s3.get_object(Bucket=L, Key="comp.txt", VersionId=v)["Body"].read() == b"compliant", "version kept")
s3.put_object_legal_hold(Bucket=L, Key="held.txt", VersionId=held, LegalHold={"Status": "OFF"})
s3.delete_object(Bucket=L, Key="held.txt", VersionId=held, BypassGovernanceRetention=True)
code = error_code(lambda: s3.put_bucket_versioning(Bucket=L, VersioningConfiguration={"Status": "Suspended"}))
check(code == "InvalidBucketState", f"suspending versioning on a lock bucket: {code}")
code = error_code(lambda: s3.put_object(Bucket=B, Key="compat/nolock.txt", Body=b"x",
                                        ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until))
check(code == "InvalidRequest", f"Object Lock headers on a bucket without Object Lock: {code}")
check(error_code(lambda: s3.head_object(Bucket=B, Key="compat/nolock.txt")) == "404", "not created")

step("boto3: bucket tagging")
s3.put_bucket_tagging(Bucket=B, Tagging={"TagSet": [{"Key": "env", "Value": "test"},
                                                    {"Key": "team", "Value": "web"}]})
tags = sorted((t["Key"], t["Value"]) for t in s3.get_bucket_tagging(Bucket=B)["TagSet"])
check(tags == [("env", "test"), ("team", "web")], tags)
s3.delete_bucket_tagging(Bucket=B)
code = error_code(lambda: s3.get_bucket_tagging(Bucket=B))
check(code == "NoSuchTagSet", f"after delete_bucket_tagging: {code}")

print("all S3 client flows passed")
