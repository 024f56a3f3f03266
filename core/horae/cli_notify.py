"""`horae agent --mail-* --webhook-*`: Dkron's notification flags (docs/notifications.md)."""

from __future__ import annotations

import argparse

# The AgentConfig settings these flags set (each also a config file key and a HORAE_* variable).
NOTIFICATION_SETTINGS = (
    "mail_host",
    "mail_port",
    "mail_username",
    "mail_password",
    "mail_from",
    "mail_subject_prefix",
    "mail_payload",
    "webhook_endpoint",
    "webhook_payload",
    "webhook_headers",
)


def add_notification_flags(agent: argparse.ArgumentParser) -> None:
    mail = agent.add_argument_group("notifications by mail (each job's owner_email, and notify.email)")
    mail.add_argument("--mail-host", metavar="HOST", help="SMTP server; without it horae sends no mail")
    mail.add_argument("--mail-port", type=int, metavar="PORT", help="SMTP port (default 25; 465: implicit TLS)")
    mail.add_argument("--mail-username", metavar="USER", help="SMTP login (with --mail-password)")
    mail.add_argument("--mail-password", metavar="PASSWORD", help="SMTP password")
    mail.add_argument("--mail-from", metavar="ADDRESS", help="sender address (default horae@<host name>)")
    mail.add_argument("--mail-subject-prefix", metavar="TEXT", help='put before each subject (default "[horae]")')
    mail.add_argument("--mail-payload", metavar="TEMPLATE", help="mail body template (default: the report)")
    hook = agent.add_argument_group("notifications by webhook (every execution)")
    hook.add_argument(
        "--webhook-endpoint", "--webhook-url", dest="webhook_endpoint", metavar="URL", help="POSTed to after each run"
    )
    hook.add_argument("--webhook-payload", metavar="TEMPLATE", help="body template (default: the execution as JSON)")
    hook.add_argument(
        "--webhook-headers",
        "--webhook-header",
        dest="webhook_headers",
        action="append",
        metavar="'NAME: VALUE'",
        help="a header of the webhook call (repeatable)",
    )
