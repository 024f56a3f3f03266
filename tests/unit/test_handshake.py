import pytest

from horae_sdk.handshake import HandshakeError, negotiate, parse_handshake


def test_parses_a_go_plugin_line_with_an_empty_certificate_field():
    shake = parse_handshake("1|1|unix|/tmp/plugin1|grpc|\n")
    assert (shake.network, shake.address, shake.protocol, shake.server_cert) == ("unix", "/tmp/plugin1", "grpc", "")
    assert shake.grpc_target == "unix:/tmp/plugin1"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("hello world", "expected a handshake line"),
        ("1|1|tcp|127.0.0.1:1234|netrpc", "horae supports only grpc"),
        ("1|1|tcp|127.0.0.1:1234", "horae supports only grpc"),
        ("1|7|unix|/tmp/p|grpc", "did not offer"),
        ("2|1|unix|/tmp/p|grpc", "core protocol version"),
        ("1|1|pipe|/tmp/p|grpc", "network type"),
    ],
)
def test_refuses_bad_lines_with_a_reason(line, expected):
    with pytest.raises(HandshakeError, match=expected):
        parse_handshake(line)


def test_negotiation_picks_the_highest_common_version():
    assert negotiate([1, 2, 3], [1, 2]) == 2
    assert negotiate([5], [1]) is None
