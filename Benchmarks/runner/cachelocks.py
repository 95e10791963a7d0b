"""Counts, per connection, the operations on the locks of NSS's
multi-process session cache in `nss-tls serve --workers N`, and futex calls.

On x86_64 NSS's cross-process lock (lib/ssl/sslmutex.c) is a pipe: every
acquisition reads one byte and every release writes one, contended or not,
and a contended acquisition sleeps in that read. So the reads and writes on
the cache's pipes (the pipes a worker shares with its parent) count lock
operations. Needs linux-perf and root.

    python3 -m runner.cachelocks NSS_TLS PKI_DIR [WORKERS]

PKI_DIR is what runner.pki.make wrote (cert.pem, key.pem, client-db).
"""

import os
import re
import subprocess
import sys
import time

from . import servers
from .workers import descendants

nss_tls, pki = sys.argv[1], sys.argv[2]
workers = sys.argv[3] if len(sys.argv) > 3 else "2"
port = servers.free_port()
srv=subprocess.Popen([nss_tls,'serve','--cert',pki+'/cert.pem','--key',pki+'/key.pem','--port',str(port),'--workers',workers],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL,start_new_session=True)
time.sleep(2)
children=[str(c) for c in descendants(srv.pid)]
parent_pipes={os.readlink(f'/proc/{srv.pid}/fd/{fd}') for fd in os.listdir(f'/proc/{srv.pid}/fd') if os.readlink(f'/proc/{srv.pid}/fd/{fd}').startswith('pipe:')}
w=children[0]
lockfds=sorted(int(fd) for fd in os.listdir(f'/proc/{w}/fd') if os.readlink(f'/proc/{w}/fd/{fd}') in parent_pipes)
print('workers',children,'lock pipe fds',lockfds)
lo,hi=min(lockfds),max(lockfds)
flt=f'fd >= {lo} && fd <= {hi}'
for scenario,args,n in [('resumed TLS 1.2',['-V','tls1.2:tls1.2'],5000),('resumed TLS 1.3',['-V','tls1.3:tls1.3','-u'],3000),('full TLS 1.3',['-N','-V','tls1.3:tls1.3'],1000)]:
    perf=subprocess.Popen(['perf','stat','-x,','-e','syscalls:sys_enter_read','--filter',flt,'-e','syscalls:sys_enter_write','--filter',flt,'-e','syscalls:sys_enter_futex','-p',','.join(children)],stderr=subprocess.PIPE,text=True)
    time.sleep(0.5)
    out=subprocess.run(['strsclnt','-d','sql:'+pki+'/client-db','-D','-o','-q','-c',str(n),*args,'-p',str(port),'127.0.0.1'],capture_output=True,text=True)
    perf.send_signal(2); err=perf.communicate()[1]
    counts={}
    for line in err.splitlines():
        p=line.split(',')
        if len(p)>3 and p[0].strip().isdigit(): counts[p[2]]=int(p[0])
    hits=max([int(x) for x in re.findall(r'(\d+) (?:cache hits|stateless resumes)',out.stdout+out.stderr)]+[0])
    print(scenario, 'resumed',hits, {k.replace('syscalls:sys_enter_',''):round(v/n,4) for k,v in counts.items()}, 'per connection')
srv.terminate(); srv.wait(timeout=15)
