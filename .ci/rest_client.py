"""A partner's first steps with the Python client generated from docs/openapi.json
(openapi-python-client), unedited: push, list, a federated query and an error.

Run by tests/rest.rs (`generated_python_client_...`, which .ci/run enables) against real nodes:
    rest_client.py SWV_BASE_URL LEERPLICHT_BASE_URL CERTS_DIR BSN...
"""

import datetime
import ssl
import sys

from pactgate_client import Client
from pactgate_client.api.signalen import list_signals, push_signals
from pactgate_client.api.uitwisseling import federated_query
from pactgate_client.models import (
    AccessClaim,
    CategoryCode,
    FederatedQueryRequest,
    FederatedQueryResponse,
    Problem,
    PushReport,
    PushRequest,
    SectorCode,
    SignalPage,
    SignalRecord,
    SignalStatus,
)


def client(base_url, certs, party):
    context = ssl.create_default_context(cafile=f"{certs}/ca.pem")
    context.load_cert_chain(f"{certs}/{party}.pem", f"{certs}/{party}.key")
    return Client(base_url=base_url, verify_ssl=context, raise_on_unexpected_status=True)


def record(i, bsn, age=14):
    return SignalRecord(
        source_record_id=f"py-{i}x",
        pupil_id=bsn,
        category=CategoryCode.LRV,
        sector=SectorCode.VO,
        residence_municipality="GM0014",
        school="20XY01",
        absent_since=datetime.date.today() - datetime.timedelta(days=60),
        status=SignalStatus.OPEN,
        age=age,
    )


def main():
    swv_url, leerplicht_url, certs, *bsns = sys.argv[1:]
    swv = client(swv_url, certs, "swv-vo")

    pushed = push_signals.sync_detailed(
        client=swv, body=PushRequest(records=[record(i, b) for i, b in enumerate(bsns)])
    )
    assert pushed.status_code == 200, pushed
    assert isinstance(pushed.parsed, PushReport), pushed.parsed
    assert pushed.parsed.accepted == len(bsns), pushed.parsed
    assert pushed.headers["api-version"] == "1.0.0"

    page = list_signals.sync(client=swv, page_size=2)
    assert isinstance(page, SignalPage), page
    assert [s.source_record_id for s in page.signals] == ["py-0x", "py-1x"], page
    rest = list_signals.sync(client=swv, page_token=page.next_page_token)
    assert len(page.signals) + len(rest.signals) == len(bsns), rest
    assert all(s.pupil_pseudonym.startswith("v1.") for s in page.signals)

    leerplicht = client(leerplicht_url, certs, "leerplicht")
    answer = federated_query.sync(
        client=leerplicht,
        body=FederatedQueryRequest(
            claim=AccessClaim(
                role="leerplichtambtenaar",
                legal_basis="lpw-art21",
                purpose="verzuimaanpak",
                actor="ci",
                routine_flow="verzuimmelding",
            ),
            timeout_ms=3000,
        ),
    )
    assert isinstance(answer, FederatedQueryResponse), answer
    assert not answer.failures, answer.failures
    shared = [s for a in answer.answers for s in a.signals]
    assert len(shared) == len(bsns), answer

    refused = push_signals.sync_detailed(
        client=swv, body=PushRequest(records=[record(99, bsns[0], age=2)])
    )
    assert refused.status_code == 400, refused
    assert refused.headers["content-type"] == "application/problem+json"
    assert isinstance(refused.parsed, Problem), refused.parsed
    assert refused.parsed.rejected[0].field == "age", refused.parsed
    assert bsns[0] not in refused.content.decode()
    print("python client: push, list, federated query and a refusal as documented")


if __name__ == "__main__":
    main()
