"""A tiny IMDSv2 stand-in for the EC2 node tier (not amazon-ec2-metadata-mock: see tests/ec2/README.md).

Serves what an instance with ``http_tokens = "required"`` sees at 169.254.169.254:
  PUT /latest/api/token                 a session token (needs X-aws-ec2-metadata-token-ttl-seconds)
  GET /latest/user-data                 the instance's CURRENT user data, read from the EC2 API
                                        emulator (moto: DescribeInstanceAttribute userData)
  GET /latest/meta-data/instance-id     the instance id
  GET /latest/meta-data/iam/security-credentials/[ROLE]
                                        instance-profile credentials (none with --no-role)
Every GET without a valid token is refused with 401, as IMDSv2-only instances do. Each request is
appended to --log as one JSON line (method, path, whether it carried a valid token, status), so a
test can prove who used the token.

Run in the node's network namespace with the tier's venv python (boto3 comes with moto):
  python imds.py --listen 169.254.169.254:80 --moto http://127.0.0.1:5000 --region R --instance-id I --log F
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ROLE = "bkf-ec2-tier-node"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--moto", required=True)
    ap.add_argument("--region", required=True)
    ap.add_argument("--instance-id", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--no-role", action="store_true", help="no instance profile: no credentials")
    args = ap.parse_args()

    import boto3  # the tier's venv (moto[server] brings it)

    ec2 = boto3.client("ec2", region_name=args.region, endpoint_url=args.moto,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    tokens: set[str] = set()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *a: Any) -> None:
            pass

        def record(self, status: int, token_ok: bool) -> None:
            with lock, open(args.log, "a") as f:
                f.write(json.dumps({"method": self.command, "path": self.path, "token": token_ok,
                                    "status": status}) + "\n")

        def reply(self, status: int, body: bytes, token_ok: bool, ctype: str = "text/plain") -> None:
            self.record(status, token_ok)
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_PUT(self) -> None:
            if self.path != "/latest/api/token":
                self.reply(404, b"not found", False)
                return
            if not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "").isdigit():
                self.reply(400, b"missing or invalid X-aws-ec2-metadata-token-ttl-seconds", False)
                return
            token = secrets.token_urlsafe(32)
            with lock:
                tokens.add(token)
            self.reply(200, token.encode(), False)

        def do_GET(self) -> None:
            token_ok = self.headers.get("X-aws-ec2-metadata-token", "") in tokens
            if not token_ok:
                self.reply(401, b"Unauthorized", False)
                return
            path = self.path
            if path == "/latest/user-data":
                attr = ec2.describe_instance_attribute(InstanceId=args.instance_id, Attribute="userData")
                data = attr.get("UserData", {}).get("Value")
                if not data:
                    self.reply(404, b"no user data", True)
                    return
                self.reply(200, base64.b64decode(data), True, "application/octet-stream")
            elif path == "/latest/meta-data/instance-id":
                self.reply(200, args.instance_id.encode(), True)
            elif path.rstrip("/") == "/latest/meta-data/iam/security-credentials":
                if args.no_role:
                    self.reply(404, b"no instance profile", True)
                else:
                    self.reply(200, ROLE.encode(), True)
            elif path == f"/latest/meta-data/iam/security-credentials/{ROLE}" and not args.no_role:
                now = datetime.now(UTC)
                creds = {"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": "ASIATESTBKFNODE",
                         "SecretAccessKey": "testing", "Token": "testing",
                         "LastUpdated": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                         "Expiration": (now + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ")}
                self.reply(200, json.dumps(creds).encode(), True, "application/json")
            else:
                self.reply(404, b"not found", True)

    host, port = args.listen.rsplit(":", 1)
    ThreadingHTTPServer((host, int(port)), Handler).serve_forever()


if __name__ == "__main__":
    main()
