#!/usr/bin/env python3
"""GitHub webhooks into a real ci-master: a bad or missing signature is refused (403) and stores
nothing; ping is answered; a signed push is stored; the same delivery again is a duplicate,
stored once; /metrics counts each outcome."""

import master_harness as harness


def main(case):
    master = case.start_master(case.write_config(case.standard_config()))
    case.check(master.get("/healthz") == {"status": "ok"}, "/healthz answers ok")

    tip = case.repo.branch("feature/good", ["good.txt"])
    body = case.repo.push_payload("feature/good", harness.ZERO, tip, "good")
    status, answer = master.webhook(body, secret="not-the-secret")
    case.check(status == 403, f"a bad signature is refused with 403 ({status}: {answer})")
    status, answer = master.post("/change_hook/github", body,
                                 {"X-GitHub-Event": "push", "Content-Type": "application/json"})
    case.check(status == 403, f"a webhook without a signature is refused ({status}: {answer})")
    case.check(master.get("/api/v1/changes")["changes"] == [], "refused webhooks stored nothing")

    status, answer = master.webhook(b'{"zen": "hi", "hook_id": 1}', event="ping")
    case.check(status == 200 and answer == {"pong": True}, f"ping answered ({status}: {answer})")

    delivery = "delivery-" + case.webhook_secret[-8:]
    status, answer = master.webhook(body, delivery=delivery)
    case.check(status == 200 and len(answer.get("changes", [])) == 1,
               f"a signed push is accepted ({status}: {answer})")
    status, again = master.webhook(body, delivery=delivery)
    case.check(status == 200 and again.get("duplicate") is True,
               f"the same delivery again is answered as a duplicate ({status}: {again})")
    changes = master.get("/api/v1/changes")["changes"]
    case.check([c["revision"] for c in changes] == [tip] and
               changes[0]["id"] == answer["changes"][0] and changes[0]["branch"] == "feature/good",
               f"and stored once, as the push of feature/good ({changes})")

    metrics = master.get("/metrics")
    for outcome, count in (("accepted", 1), ("rejected", 2), ("duplicate", 1)):
        line = f'ci_webhooks_total{{outcome="{outcome}"}} {count}'
        case.check(line in metrics.splitlines(), f"/metrics: {line}")


if __name__ == "__main__":
    harness.run(main)
