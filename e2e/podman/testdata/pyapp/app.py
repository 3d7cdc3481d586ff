"""An unmodified Python service: serves a data file and a value from a
module over mutual TLS. It knows nothing about Cloister: its certificate,
key, CA and port arrive as files and environment, its data file and module
are plain files at their usual paths."""

import http.server
import json
import os
import ssl

import secretmod

with open("/srv/app/data.txt", encoding="utf-8") as f:
    DATA = f.read()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        peer = dict(x[0] for x in self.connection.getpeercert()["subject"])
        body = json.dumps({"data": DATA, "module": secretmod.SECRET, "client": peer.get("commonName", "")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("/srv/tls/cert.pem", "/srv/tls/key.pem")
ctx.load_verify_locations("/srv/tls/ca.pem")
ctx.verify_mode = ssl.CERT_REQUIRED
server = http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print("python service listening on port", os.environ["PORT"], flush=True)
server.serve_forever()
