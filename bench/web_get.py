"""Starts a download through a node's control API and follows its event
stream until the transfer is done; prints the seconds from the request to
the done event. Used by bench/web.sh.

    python3 bench/web_get.py URL API_KEY TARGET DIR
"""
import json
import sys
import time
import urllib.request

url, key, target, folder = sys.argv[1:5]
auth = {"Authorization": "Bearer " + key}
events = urllib.request.urlopen(urllib.request.Request(url + "/api/v1/events", headers=auth))
start = time.monotonic()
body = json.dumps({"target": target, "dir": folder}).encode()
req = urllib.request.Request(url + "/api/v1/downloads", data=body, method="POST",
                             headers={**auth, "Content-Type": "application/json"})
tid = json.load(urllib.request.urlopen(req))["id"]
name = None
for raw in events:
    line = raw.decode().rstrip("\n")
    if line.startswith("event:"):
        name = line[6:].strip()
    elif line.startswith("data:") and name in ("transfer", "transfers"):
        data = json.loads(line[5:])
        for t in data if isinstance(data, list) else [data]:
            if t["id"] == tid and t["state"] in ("done", "failed", "cancelled"):
                if t["state"] != "done":
                    sys.exit("the download " + t["state"] + ": " + str(t.get("error")))
                print("%.2f" % (time.monotonic() - start))
                sys.exit(0)
