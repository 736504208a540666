#!/usr/bin/env python3
"""bench/bayes_send.py - send real messages over SMTP, for bench/bayes.sh.

  bayes_send.py PORT SESSIONS LIST

Sends every file named in LIST (one path a line) to 127.0.0.1:PORT, from
sender@example.org to bob@example.com, over SESSIONS connections held
open (RSET between messages, as smtp-source -d), the files dealt among
them.  smtplib turns bare LF into CRLF and dot-stuffs.  Prints the number
of messages accepted.  Postfix's smtp-source can only send a message it
makes up; a content filter has to read real mail.

Fails: a refused message or a lost connection exits 1 with the reply.
"""
import smtplib
import sys
import threading


def main():
    if len(sys.argv) != 4:
        print("usage: bayes_send.py PORT SESSIONS LIST", file=sys.stderr)
        sys.exit(2)
    port, sessions = int(sys.argv[1]), int(sys.argv[2])
    with open(sys.argv[3]) as f:
        paths = [line.rstrip("\n") for line in f if line.strip()]
    msgs = []
    for p in paths:
        with open(p, "rb") as f:
            msgs.append(f.read())
    errors, sent = [], [0] * sessions

    def worker(i):
        try:
            s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.example.org", timeout=60)
            for m in msgs[i::sessions]:
                s.sendmail("sender@example.org", ["bob@example.com"], m)
                sent[i] += 1
            s.quit()
        except (smtplib.SMTPException, OSError) as e:
            errors.append(f"session {i}: {e}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        print("bayes_send.py: " + "; ".join(errors[:3]), file=sys.stderr)
        sys.exit(1)
    print(sum(sent))


if __name__ == "__main__":
    main()
