"""Broker and state URLs: parsing, defaults, and what Celery is given."""

from __future__ import annotations

import pytest

from segenc.distributed.app import make_app, priority, rabbitmq_consumer_timeout_ms, state_url_of
from segenc.distributed.brokers import BrokerURLError, celery_url, parse_sentinel, state_url


def test_state_defaults_to_a_redis_broker_and_is_required_for_amqp():
    assert state_url("redis://:pw@h:1/0") == "redis://:pw@h:1/0"
    assert state_url("amqp://g:g@h:5672//", "redis://h:2/1") == "redis://h:2/1"
    with pytest.raises(BrokerURLError, match="--state-url"):
        state_url("amqp://g:g@h:5672//")
    with pytest.raises(BrokerURLError, match="state"):
        state_url("redis://h:1/0", "amqp://h//")


def test_sentinel_url_names_hosts_master_db_and_password():
    s = parse_sentinel("sentinel://:p%40w@h1:26379;h2:26380/3?master=main")
    assert s.hosts == (("h1", 26379), ("h2", 26380)) and s.master == "main" and s.db == 3 and s.password == "p@w"
    assert parse_sentinel("sentinel://a:1,b:2?master=m").hosts == (("a", 1), ("b", 2))
    url, opts = celery_url("sentinel://:pw@h1:26379;h2:26380/3?master=main")
    assert url == "sentinel://:pw@h1:26379/3;sentinel://:pw@h2:26380/3" and opts == {"master_name": "main"}
    with pytest.raises(BrokerURLError, match="master"):
        parse_sentinel("sentinel://h1:26379/0")
    with pytest.raises(BrokerURLError, match="host"):
        parse_sentinel("sentinel://h1/0?master=m")


def test_rediss_gets_a_certificate_check_unless_it_says_otherwise():
    assert celery_url("rediss://:pw@h:6380/0")[0] == "rediss://:pw@h:6380/0?ssl_cert_reqs=required"
    assert "ssl_cert_reqs=none" in celery_url("rediss://h:6380/0?ssl_cert_reqs=none")[0]


def test_amqp_app_keeps_state_in_redis_with_heartbeat_and_inverted_priorities():
    app = make_app("amqp://g:g@127.0.0.1:5672//", state_url="redis://127.0.0.1:6399/2")
    assert state_url_of(app) == "redis://127.0.0.1:6399/2"
    assert app.conf.result_backend.endswith("+redis://127.0.0.1:6399/2")
    assert app.conf.broker_heartbeat == 30 and app.conf.task_queue_max_priority == 9
    assert priority(app, 0) == 9 and priority(app, 9) == 0  # RabbitMQ serves the highest first
    redis_app = make_app("redis://127.0.0.1:6399/0")
    assert priority(redis_app, 0) == 0 and state_url_of(redis_app) == "redis://127.0.0.1:6399/0"
    # RabbitMQ's consumer timeout outlasts the longest task (the time limit) and Redis's visibility timeout matches
    assert rabbitmq_consumer_timeout_ms(3600) > 3600 * 1000
    assert redis_app.conf.broker_transport_options["visibility_timeout"] * 1000 == rabbitmq_consumer_timeout_ms(3600)


def test_unknown_broker_scheme_is_named():
    with pytest.raises(BrokerURLError, match="unsupported broker"):
        make_app("kafka://h:9092")


def test_an_amqp_broker_without_a_state_redis_is_refused_with_the_fix(tmp_path, capsys):
    from segenc.cli import main as segenc_main
    from service.cli import main as service_main

    assert service_main(["--worker-name", "w", "--tmp-dir", str(tmp_path / "w"),
                         "--broker-url", "amqp://guest:guest@127.0.0.1:1//"]) == 2
    assert "--state-url" in capsys.readouterr().err
    (tmp_path / "in.mp4").write_bytes(b"\0" * 64)  # exists: the broker URL is what is refused
    assert segenc_main(["encode", str(tmp_path / "in.mp4"), "-o", str(tmp_path / "o"), "--broker", "amqp://g:g@127.0.0.1:1//",
                        "--storage", str(tmp_path / "s")]) == 2
    assert "--state-url" in capsys.readouterr().err
