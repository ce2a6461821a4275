"""A loopback feed server for qdwallet's tests, with faults on request.

Usage: python3 feed_server.py ROOT PORT_FILE
Serves files under ROOT on 127.0.0.1 (a free port, written to PORT_FILE). The first path
segment picks the behaviour:
  /ok/FILE          the file
  /flaky/N/FILE     HTTP 500 for the first N requests of that path, then the file
  /missing/FILE     HTTP 404
  /denied/FILE      HTTP 403
  /slow/FILE        waits 5 s before answering (longer than the tests' timeout)
  /truncated/FILE   claims a longer Content-Length than it sends, then closes
  /drip/FILE        sends one byte every 2 s (slower than the low-speed limit)
  /upload/FILE      PUT stores the body under ROOT/uploads/FILE
  /hook/ok          POST stores body and headers as ROOT/hooks/N.json, answers 200
  /hook/flaky/N     POST answers 500 for the first N requests, then as /hook/ok
  /hook/down        POST answers 503
  /hook/slow        POST waits 5 s
It stops by itself after 120 s.
"""
import http.server, os, sys, threading, time

root, port_file = sys.argv[1], sys.argv[2]
counts = {}
lock = threading.Lock()

class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def body(self, name):
        path = os.path.join(root, name)
        if not os.path.isfile(path):
            return None
        with open(path, 'rb') as f:
            return f.read()

    def do_GET(self):
        parts = self.path.lstrip('/').split('/')
        mode = parts[0]
        if mode == 'flaky':
            failures, name = int(parts[1]), '/'.join(parts[2:])
            with lock:
                counts[self.path] = counts.get(self.path, 0) + 1
                seen = counts[self.path]
            if seen <= failures:
                self.send_error(500, 'flaky')
                return
        else:
            name = '/'.join(parts[1:])
        if mode == 'missing':
            self.send_error(404)
            return
        if mode == 'denied':
            self.send_error(403)
            return
        data = self.body(name)
        if data is None:
            self.send_error(404)
            return
        if mode == 'slow':
            time.sleep(5)
        self.send_response(200)
        self.send_header('Content-Type', 'application/xml')
        if mode == 'truncated':
            self.send_header('Content-Length', str(len(data) + 1000))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        if mode == 'drip':
            for i in range(len(data)):
                self.wfile.write(data[i:i + 1])
                self.wfile.flush()
                time.sleep(2)
            return
        self.wfile.write(data)

    def do_PUT(self):
        parts = self.path.lstrip('/').split('/')
        length = int(self.headers.get('Content-Length', '0'))
        data = self.rfile.read(length)
        target = os.path.join(root, 'uploads', '/'.join(parts[1:]))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, 'wb') as f:
            f.write(data)
        self.send_response(201)
        self.send_header('Content-Length', '0')
        self.end_headers()

hook_count = [0]

def do_POST(self):
    length = int(self.headers.get('Content-Length', '0'))
    data = self.rfile.read(length)
    parts = self.path.lstrip('/').split('/')
    if parts[1] == 'down':
        self.send_error(503)
        return
    if parts[1] == 'slow':
        time.sleep(5)
    if parts[1] == 'flaky':
        with lock:
            counts[self.path] = counts.get(self.path, 0) + 1
            seen = counts[self.path]
        if seen <= int(parts[2]):
            self.send_error(500)
            return
    import json
    with lock:
        hook_count[0] += 1
        n = hook_count[0]
    os.makedirs(os.path.join(root, 'hooks'), exist_ok=True)
    with open(os.path.join(root, 'hooks', '%d.json' % n), 'w') as f:
        json.dump({'body': data.decode('utf-8'), 'signature': self.headers.get('X-QDWallet-Signature'), 'message_id': self.headers.get('X-QDWallet-Message-Id')}, f)
    self.send_response(200)
    self.send_header('Content-Length', '0')
    self.end_headers()

Handler.do_POST = do_POST

server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
with open(port_file + '.tmp', 'w') as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + '.tmp', port_file)
threading.Timer(120, server.shutdown).start()
server.serve_forever()
