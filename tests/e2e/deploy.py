"""doc/DEPLOY.md, run: every `sh host=...` block of the guide, in order, on the host its
fence names, against a lab realm on loopback (kasa lab up, no members). Prints TAP.

Each host gets a directory of its own standing for its /etc/kasa, /var/lib/kasa,
/var/cache/kasa and /etc/haproxy; the members are 127.0.0.11..13 (their names resolve
there through nss_wrapper, never the machine's /etc/hosts) with the guide's ports
replaced by free ones, the balancer 127.0.0.10. A few commands stand in for the
machines' own: systemctl starts a unit's ExecStart (packaging/systemd, with this build's
programs) and waits for its READY=1 as systemd does for Type=notify; scp copies between
the hosts' directories; chown to the kasa user is skipped when there is no such user.
After the guide, alice authenticates through the balancer with Kerberos.

    python3 deploy.py DEPLOY.md UNITS_DIR [--ad]

With --ad, the guide's Active Directory blocks (hosts dc, ad-member, ad-admin) instead,
against kasa lab up --ad --members 3: the lab's members' computer accounts stand for the
domain join (their host keytabs become each member's kasad.keytab), samba-tool runs with
the DC's own smb.conf, and the lab's own member daemons are stopped first.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

KASA = os.environ["KASA"]
KASAD = os.environ["KASAD"]
KASA_HTTPD = os.environ["KASA_HTTPD"]
MEMBERS = {"cas1": "127.0.0.11", "cas2": "127.0.0.12", "cas3": "127.0.0.13"}
BALANCER = "127.0.0.10"

n = 0
failed = 0


def tap(ok, desc, detail=""):
    global n, failed
    n += 1
    if not ok:
        failed += 1
    print(("ok" if ok else "not ok") + f" {n} - {desc}")
    for line in detail.splitlines()[-25:] if not ok else []:
        print("# " + line)
    sys.stdout.flush()


def free_port(addrs):
    """A port free on every address (members share their port numbers)."""
    for _ in range(200):
        s = socket.socket()
        s.bind((addrs[0], 0))
        port = s.getsockname()[1]
        s.close()
        ok = True
        for a in addrs[1:]:
            t = socket.socket()
            try:
                t.bind((a, port))
            except OSError:
                ok = False
            t.close()
        if ok:
            return port
    raise RuntimeError("no free port")


def blocks(path):
    """(host, text) for each ```sh host=NAME block."""
    out, cur, host = [], None, None
    for line in open(path):
        m = re.match(r"^```sh host=(\S+)\s*$", line)
        if cur is None and m:
            cur, host = [], m.group(1)
        elif cur is not None and line.startswith("```"):
            out.append((host, "".join(cur)))
            cur = None
        elif cur is not None:
            cur.append(line)
    return out


SHIM_SYSTEMCTL = r'''#!/usr/bin/env python3
# systemctl, as far as the guide uses it: see deploy.py.
import json, os, re, socket, subprocess, sys, time
work, host, root = os.environ["DEPLOY_WORK"], os.environ["DEPLOY_HOST"], os.environ["DEPLOY_ROOT"]
units = os.environ["DEPLOY_UNITS"]
args = [a for a in sys.argv[1:] if a not in ("--now", "-q")]
verb, names = args[0], args[1:]

def rewrite(s):
    s = s.replace("/usr/sbin/kasad ", os.environ["KASAD"] + " ")
    s = s.replace("/usr/sbin/kasa-httpd ", os.environ["KASA_HTTPD"] + " ")
    s = s.replace("/usr/bin/kasa ", os.environ["KASA"] + " ")
    for d in ("/etc/kasa", "/var/lib/kasa", "/var/cache/kasa"):
        s = s.replace(d, root + d)
    return s

def unit(name, key="ExecStart"):
    text = open(os.path.join(units, name)).read()
    return [l.split("=", 1)[1] for l in text.splitlines() if l.startswith(key + "=")]

def unit_env(name):
    env = dict(os.environ)
    for line in unit(name, "Environment"):
        k, v = rewrite(line + " ").strip().split("=", 1)
        env[k] = v
    return env

def start_notify(name, cmd):
    sock = os.path.join(work, "notify-%s-%s" % (host, name))
    if os.path.exists(sock):
        os.unlink(sock)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(sock)
    s.settimeout(20)
    env = dict(unit_env(name + ".service"), NOTIFY_SOCKET=sock)
    log = open(os.path.join(work, "%s-%s.out" % (host, name)), "a")
    p = subprocess.Popen(["sh", "-c", "exec " + cmd], env=env, stdout=log, stderr=log,
                         start_new_session=True)
    open(os.path.join(work, "pids"), "a").write("%d\n" % p.pid)
    try:
        while True:
            msg = s.recv(256).decode()
            if "READY=1" in msg.split("\n"):
                return 0
    except socket.timeout:
        print("systemctl: %s did not say READY=1; see %s" % (name, log.name), file=sys.stderr)
        return 1

st = 0
for name in names:
    if name == "krb5-admin-server" and verb == "restart":
        lab = os.environ["DEPLOY_LAB"]
        out = subprocess.run([os.environ["KASA"], "lab", "status", "--dir", lab, "--json"],
                             capture_output=True, text=True).stdout
        pid = json.loads(out)["kadmind"]["pid"]
        os.kill(pid, 15)
        for _ in range(100):
            if subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0:
                break
            time.sleep(0.05)
        st |= subprocess.run([os.environ["KASA"], "lab", "up", "--dir", lab],
                             stdout=subprocess.DEVNULL).returncode
    elif name == "haproxy" and verb in ("reload", "restart", "start"):
        cfg = root + "/etc/haproxy/haproxy.cfg"
        pidf = os.path.join(work, "haproxy.pid")
        st |= subprocess.run(["haproxy", "-D", "-f", cfg, "-p", pidf]).returncode
        if st == 0:
            time.sleep(0.3)
            open(os.path.join(work, "pids"), "a").write(open(pidf).read())
    elif name.endswith(".timer") and verb == "enable":
        # What the timer's first run does: its service's ExecStart lines, in order.
        inst = re.match(r"(.*)@(.*)\.timer$", name)
        service = inst.group(1) + "@.service"
        for line in unit(service):
            ignore = line.startswith("-")
            cmd = rewrite(line.lstrip("-").replace("%i", inst.group(2)) + " ")
            r = subprocess.run(["sh", "-c", cmd], env=unit_env(service))
            if r.returncode != 0 and not ignore:
                st |= 1
    elif verb == "enable" and name in ("kasad", "kasa-httpd"):
        st |= start_notify(name, rewrite(unit(name + ".service")[0] + " ").strip())
    else:
        print("systemctl shim: %s %s is not something the guide does" % (verb, name), file=sys.stderr)
        st = 1
sys.exit(st)
'''

SHIM_SCP = r'''#!/bin/sh
# scp [-p] FILE HOST:PATH between the hosts' directories: see deploy.py.
[ "$1" = -p ] && shift
src=$1 dst=$2
h=${dst%%:*}
h=${h%%.*}
path=${dst#*:}
cp -p "$src" "$DEPLOY_WORK/hosts/$h$path"
'''

SHIM_CHOWN = r'''#!/bin/sh
# chown to the kasa user where there is one (the packages make it); skipped otherwise.
if ! getent passwd kasa >/dev/null; then exit 0; fi
exec /bin/chown "$@"
'''

SHIM_KASA = '#!/bin/sh\nexec "$KASA" "$@"\n'


AD = "--ad" in sys.argv[3:]
HOSTS = ("dc", "ad-member", "ad-admin") if AD else ("kdc", "member", "balancer", "admin")


def main():
    guide, units = sys.argv[1], sys.argv[2]
    work = tempfile.mkdtemp(prefix="kasa-deploy.")
    lab = os.path.join(work, "lab")
    pids = os.path.join(work, "pids")
    open(pids, "w").close()
    try:
        run(guide, units, work, lab)
    finally:
        for line in open(pids):
            try:
                os.killpg(int(line), signal.SIGTERM)
            except (OSError, ValueError):
                try:
                    os.kill(int(line), signal.SIGTERM)
                except (OSError, ValueError):
                    pass
        subprocess.run([KASA, "lab", "down", "--dir", lab], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)
    print(f"1..{n}")
    sys.exit(1 if failed else 0)


def run(guide, units, work, lab):
    up = [KASA, "lab", "up", "--dir", lab] + (["--ad", "--members", "3"] if AD else [])
    r = subprocess.run(up, capture_output=True, text=True)
    if r.returncode != 0:
        print("Bail out! kasa lab up failed: " + r.stdout + r.stderr)
        sys.exit(1)
    env = dict(os.environ)
    for line in subprocess.check_output([KASA, "lab", "env", "--dir", lab], text=True).splitlines():
        k, v = line[len("export "):].split("=", 1)
        env[k] = v
    # kadmind's ACL starts empty, as on a realm that never heard of kasa: only the guide's
    # lines give kasa/admin its rights, so a right the guide forgets fails the roll.
    if not AD:
        with open(os.path.join(lab, "kadm5.acl"), "w") as f:
            f.write("# emptied by tests/e2e/deploy.py: only DEPLOY.md's lines count\n")
    else:
        status = json.loads(subprocess.check_output([KASA, "lab", "status", "--dir", lab,
                                                     "--json"], text=True))
        for i, m in enumerate(MEMBERS):
            subprocess.run([KASA, "lab", "member", "stop", m, "--dir", lab],
                           stdout=subprocess.DEVNULL)
    env.pop("NTLM_USER_FILE", None)
    env.pop("KASA_CONFIG", None)
    bindir = os.path.join(work, "bin")
    os.makedirs(bindir)
    for name, text in (("systemctl", SHIM_SYSTEMCTL), ("scp", SHIM_SCP), ("chown", SHIM_CHOWN),
                       ("kasa", SHIM_KASA)):
        with open(os.path.join(bindir, name), "w") as f:
            f.write(text)
        os.chmod(os.path.join(bindir, name), 0o755)
    hosts = os.path.join(work, "hosts.txt")
    with open(hosts, "w") as f:
        f.write("127.0.0.1 localhost\n")
        f.write(f"{BALANCER} outlook.proseware.lab\n")
        f.write("127.0.0.20 dc1.proseware.lab\n")
        for m, a in MEMBERS.items():
            f.write(f"{a} {m}.proseware.lab\n")
    asan = env.get("ASAN_OPTIONS", "")
    env.update(PATH=bindir + ":" + env["PATH"], DEPLOY_WORK=work, DEPLOY_LAB=lab,
               DEPLOY_UNITS=units, LD_PRELOAD="libnss_wrapper.so", NSS_WRAPPER_HOSTS=hosts,
               NSS_WRAPPER_DISABLE_DEEPBIND="1",
               ASAN_OPTIONS=(asan + ":" if asan else "") + "verify_asan_link_order=0")
    kasad_port = free_port(list(MEMBERS.values()))
    http_port = free_port(list(MEMBERS.values()))
    metrics_port = free_port(list(MEMBERS.values()))
    lb_port = free_port([BALANCER])
    for h in ["kdc", "dc", "admin", "balancer"] + list(MEMBERS):
        for d in ("/etc/kasa", "/var/lib/kasa", "/var/cache/kasa", "/etc/haproxy"):
            os.makedirs(os.path.join(work, "hosts", h) + d)
    if AD:
        # The domain join's result: each member's host keys, from its computer account.
        for i, m in enumerate(MEMBERS):
            shutil.copy(status["members"][i]["host_keytab"],
                        os.path.join(work, "hosts", m, "etc/kasa/kasad.keytab"))

    def rewrite(text, host, member=None):
        root = os.path.join(work, "hosts", host)
        text = text.replace("/etc/krb5kdc/kadm5.acl", os.path.join(lab, "kadm5.acl"))
        # The lab's DC, provisioned without DNS, has its ldap/ SPN for its address only.
        text = text.replace("ldap://dc1.proseware.lab", "ldap://127.0.0.20")
        for d in ("/etc/kasa", "/var/lib/kasa", "/var/cache/kasa", "/etc/haproxy"):
            text = re.sub(r"(?<![\w.:])" + re.escape(d), root + d, text)
        text = text.replace(":7460", f":{kasad_port}").replace("port = 7460", f"port = {kasad_port}")
        text = text.replace(":8080", f":{http_port}").replace("port = 8080", f"port = {http_port}")
        text = text.replace("--http-port 8080", f"--http-port {http_port}")
        if member is not None:
            text = text.replace("0.0.0.0", MEMBERS[member])
            text = re.sub(r"127\.0\.0\.1(?![0-9])", MEMBERS[member], text)
            text = text.replace("port = 9101", f"port = {metrics_port}")
            text = text.replace(":9101", f":{metrics_port}")
        text = text.replace("10.0.0.10:80", f"{BALANCER}:{lb_port}").replace("10.0.0.10", BALANCER)
        return text

    for i, (host, text) in enumerate(blocks(guide), 1):
        if host not in HOSTS:
            continue
        is_member = host in ("member", "ad-member")
        targets = list(MEMBERS) if is_member else [{"ad-admin": "admin"}.get(host, host)]
        for t in targets:
            code = rewrite(text, t, t if is_member else None)
            benv = dict(env, DEPLOY_HOST=t, DEPLOY_ROOT=os.path.join(work, "hosts", t))
            if is_member:
                benv["MEMBER"] = t
            if host == "dc":  # samba-tool on the DC reads the DC's own smb.conf
                benv["SMB_CONF_PATH"] = os.path.join(lab, "ad/etc/smb.conf")
            r = subprocess.run(["sh", "-eu", "-c", code], env=benv, capture_output=True, text=True,
                               timeout=120)
            first = text.strip().splitlines()[0]
            tap(r.returncode == 0, f"DEPLOY.md block {i} on {t}: {first}",
                f"exit {r.returncode}\n{r.stdout}{r.stderr}")

    if AD:
        return
    # The guide's promise: alice, with a ticket, through the balancer, with Kerberos.
    subprocess.run(["kinit", "-k", "-t", os.path.join(lab, "alice.keytab"), "alice"], env=env,
                   capture_output=True)
    url = f"http://outlook.proseware.lab:{lb_port}/whoami"
    seen = set()
    for _ in range(3):
        r = subprocess.run(["curl", "-s", "--max-time", "20", "--negotiate", "-u", ":", url],
                           env=env, capture_output=True, text=True)
        seen.add(r.stdout.strip())
    tap(seen == {"alice@PROSEWARE.LAB Kerberos"},
        "alice reaches outlook.proseware.lab through the balancer with Kerberos", repr(seen))
    logs = [os.path.join(work, "hosts", m, "var/lib/kasa/auth.log") for m in MEMBERS]
    lines = sum(open(p).read().count('"Kerberos"') for p in logs if os.path.exists(p))
    tap(lines >= 3, "the members' auth logs name the real mechanism, Kerberos", f"{lines} lines")


if __name__ == "__main__":
    main()
