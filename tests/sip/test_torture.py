"""Torture messages for the SIP parser, in the categories of RFC 4475 (our own messages).

VALID messages must parse, pass ``check_request`` (requests) and survive a serialize round
trip field by field; INVALID ones must be refused with a SipParseError whose reason says why,
either by ``parse_message`` ("parse") or by ``check_request`` ("check").
"""

from __future__ import annotations

import random

import pytest

from trunks.sip.message import (
    COMPACT,
    MAX_MESSAGE_SIZE,
    SipParseError,
    SipRequest,
    SipResponse,
    check_request,
    check_response,
    parse_message,
)

VALID: dict[str, bytes] = {
    # short tortuous INVITE: folding everywhere, odd case and spacing, escapes, unknown headers
    "tortuous": (
        b"INVITE sip:%61lice;ext=7%37@gw-1.Example.NET;unknownParam SIP/2.0\r\n"
        b"TO :\r\n sip:alice@gw-1.example.net ;   tag    = 1a2b3c\r\n"
        b'from   : "Caller \\"Q\\" Public" <sip:caller@[2001:db8::c0:1]>\r\n'
        b"  ;\r\n  tag = 98asjd8\r\n"
        b"MaX-fOrWaRdS: 0068\r\n"
        b"Call-ID: tortuous.ndaksdj@192.0.2.1\r\n"
        b"Content-Length   : 36\r\n"
        b"cseq: 0009\r\n  INVITE\r\n"
        b"Via  : SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;rport;branch=z9hG4bK390skdjuw\r\n"
        b"s :\r\n"
        b"NewFangledHeader:   newfangled value\r\n\tcontinued newfangled value\r\n"
        b"UnknownHeaderWithUnusualValue: ;;,,;;,;\r\n"
        b"Content-Type: application/sdp\r\n"
        b"Route:\r\n <sip:services.example.com;lr;unknownwith=value;unknown-no-value>\r\n"
        b"v:  SIP  / 2.0  / TCP     spindle.example.com   ;\r\n"
        b"  branch  =   z9hG4bK9ikj8  ,\r\n"
        b" SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239\r\n"
        b'm:"Quoted string \\"\\"" <sip:caller@example.org> ; newparam =\r\n'
        b"      newvalue ;\r\n  secondparam ; q = 0.33\r\n"
        b"\r\n"
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.2\r\ns=-\r\n"
    ),
    # wide range of valid characters: token method, strange user/password, UTF-8, odd Call-ID
    "valid-chars": (
        b"!Odd-Meth0d_*+`.%looks'~fine "
        b"sip:1_odd.URI~(sure!)&isn't+it$/mad?,/;;*:&pw+is=1,odd!*pa$$wo~d_(yes)@example.com"
        b" SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP host1.example.com;rport;branch=z9hG4bK-.!%66*_+`'~\r\n"
        b'To: "\xe2\x82\xac \\"\\\\ rich \xc3\xa9t\xc3\xa9" <sip:rich@example.com>\r\n'
        b"From: token1~` token2'+_ token3*%!.- <sip:mad@example.com>"
        b";fromParam''~+*_!.-%=\"\xd1\x80\xd0\xb0\xd0\xb1\xd0\xbe\xd1\x82\xd0\xb0\""
        b";tag=_token~1'+`*%!-.\r\n"
        b"Call-ID: valid-chars.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{\r\n"
        b"CSeq: 139122385 !Odd-Meth0d_*+`.%looks'~fine\r\n"
        b"Max-Forwards: 255\r\n"
        b"extensionHeader-!.%*+_`'~:\xef\xbb\xbfbigger than yours\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    ),
    # escapes in URIs: escaped user, escaped spaces, escaped parameter names and values
    "uri-escapes": (
        b"INVITE sip:s%70ecial%20user@example.com SIP/2.0\r\n"
        b"To: <sip:s%70ecial%20user@example.com>\r\n"
        b"From: <sip:I%20have%20spaces@example.net>;tag=5f3a\r\n"
        b"Max-Forwards: 87\r\n"
        b"i: uri-escapes.239409asdfakjkn23onasd0-3234\r\n"
        b"CSeq: 234234 INVITE\r\n"
        b"Via: SIP/2.0/UDP host5.example.net;rport;branch=z9hG4bKkdjuw\r\n"
        b"C: application/sdp\r\n"
        b"Contact:\r\n  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>\r\n"
        b"Content-Length: 31\r\n"
        b"\r\n"
        b"v=0\r\no=- 2 2 IN IP4 192.0.2.5\r\n"
    ),
    # escaped nulls in URIs (%00 is an escape like any other)
    "escaped-null": (
        b"REGISTER sip:example.com SIP/2.0\r\n"
        b"To: sip:nul-%00-nul@example.com\r\n"
        b"From: sip:nul-%00-nul@example.com;tag=839923423\r\n"
        b"Max-Forwards: 70\r\n"
        b"Call-ID: escaped-null.39203ndfvkjdasfkq3w4otrq0adsfdfnavd\r\n"
        b"CSeq: 14398234 REGISTER\r\n"
        b"Via: SIP/2.0/UDP host5.example.com;rport;branch=z9hG4bKkdjuw\r\n"
        b"Contact: <sip:%00@host5.example.com>\r\n"
        b"Contact: <sip:nul-%00%00-nul@host5.example.com>\r\n"
        b"L:0\r\n"
        b"\r\n"
    ),
    # use of % when it is not an escape: in a method token, quoted strings and a Call-ID
    "percent-not-escape": (
        b"RE%47IST%45R sip:registrar.example.com SIP/2.0\r\n"
        b'To: "%Z%45" <sip:resource@example.com>\r\n'
        b'From: "%11" <sip:resource@example.com>;tag=f232jadfj23\r\n'
        b"Call-ID: percent-not-escape.%%%@example.com\r\n"
        b"CSeq: 29344 RE%47IST%45R\r\n"
        b"Max-Forwards: 70\r\n"
        b"Via: SIP/2.0/UDP host.example.com;rport;branch=z9hG4bK209%fzsnel234\r\n"
        b'Contact: "%lt%gt%" <sip:alias1@host1.example.com>\r\n'
        b"l: 0\r\n"
        b"\r\n"
    ),
    # no LWS between display name and <
    "no-lws-display": (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b"To: sip:user@example.com\r\n"
        b"From: caller<sip:caller@example.com>;tag=323\r\n"
        b'Contact: "Quoted"<sip:caller@host.example.com>\r\n'
        b"Max-Forwards: 70\r\n"
        b"Call-ID: no-lws-display.0ha0isndaksdj\r\n"
        b"CSeq: 59 OPTIONS\r\n"
        b"Via: SIP/2.0/TCP host.example.com;rport;branch=z9hG4bK-no-lws\r\n"
        b"l: 0\r\n"
        b"\r\n"
    ),
    # long values in header fields, many Via lines, a long unknown header
    "long-values": (
        b"INVITE sip:user@example.com SIP/2.0\r\n"
        b'To: "I have a user name of ' + b"extreme" * 60 + b' length" <sip:user@example.com>\r\n'
        b"From: sip:caller@example.net;tag=" + b"9" * 400 + b"\r\n"
        b"Call-ID: long-values." + b"a" * 800 + b"@example.net\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"Max-Forwards: 70\r\n"
        + b"".join(
            b"Via: SIP/2.0/TCP sip%d.example.com;branch=z9hG4bK%d\r\n" % (i, i) for i in range(40)
        )
        + b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK"
        + b"x" * 300
        + b"\r\n"
        b"Unknown-" + b"LongName" * 30 + b": " + b"unknown-long-value " * 200 + b"\r\n"
        b"Contact: <sip:amazinglylongcallername" + b"z" * 200 + b"@host5.example.net>\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    ),
    # extra trailing octets in a UDP datagram: Content-Length says 0, a whole INVITE follows
    "trailing-octets": (
        b"REGISTER sip:example.com SIP/2.0\r\n"
        b"To: sip:j.user@example.com\r\n"
        b"From: sip:j.user@example.com;tag=43251j3j324\r\n"
        b"Max-Forwards: 8\r\n"
        b"i: trailing-octets.0ha0isndaksdjweiafasdk3\r\n"
        b"Contact: sip:j.user@host.example.com\r\n"
        b"CSeq: 8 REGISTER\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
        b"INVITE sip:joe@example.com SIP/2.0\r\n"
        b"t: sip:joe@example.com\r\n"
        b"From: sip:caller@example.net;tag=141334\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    ),
    # semicolon-separated parameters in the URI user part
    "user-params": (
        b"OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0\r\n"
        b"To: <sip:user;par=u%40example.net@example.com>\r\n"
        b"From: <sip:user;day=tuesday@example.com;maddr=239.255.255.1>;tag=23"
        b"\r\n"
        b"Max-Forwards: 70\r\n"
        b"Call-ID: user-params.0ha0isnda977644900765@192.0.2.15\r\n"
        b"CSeq: 8 OPTIONS\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw380234\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    ),
    # varied and unknown transport types in Via, Request-URI and Contact
    "transports": (
        b"OPTIONS sip:user@example.com;transport=SCTP SIP/2.0\r\n"
        b"To: sip:user@example.com\r\n"
        b"From: <sip:caller@example.com>;tag=323\r\n"
        b"Max-Forwards: 70\r\n"
        b"Call-ID: transports.kijh4akdnaqjkwendsasfdj\r\n"
        b"Accept: application/sdp\r\n"
        b"CSeq: 60 OPTIONS\r\n"
        b"Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw\r\n"
        b"Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf\r\n"
        b"Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj\r\n"
        b"Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en\r\n"
        b"Via: SIP/2.0/tcp t5.example.com;branch=z9hG4bK0a9idfnee\r\n"
        b"Via: SIP/2.0/TLS-SCTP t6.example.com;branch=z9hG4bK3ndfkj\r\n"
        b"Contact: <sip:caller@t7.example.com;transport=Mystery-Wire>\r\n"
        b"l: 0\r\n"
        b"\r\n"
    ),
    # multipart body with a CRLFCRLF and raw non-UTF-8 octets inside
    "multipart": (
        b"MESSAGE sip:kumiko@example.org SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-mp1\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: <sip:ava@example.net>;tag=mp-7\r\n"
        b"To: <sip:kumiko@example.org>\r\n"
        b"Call-ID: multipart.3847@192.0.2.1\r\n"
        b"CSeq: 1 MESSAGE\r\n"
        b'Content-Type: multipart/mixed;boundary="===b=o=u=n=d==="\r\n'
        b"Content-Length: 152\r\n"
        b"\r\n"
        b"--===b=o=u=n=d===\r\n"
        b"Content-Type: text/plain\r\n"
        b"\r\n"
        b"hello\r\n"
        b"\r\n"
        b"--===b=o=u=n=d===\r\n"
        b"Content-Type: application/octet-stream\r\n"
        b"\r\n"
        b"\x00\xff\xfe\r\n\r\n\x80\x81\n\n\x00\r\n"
        b"--===b=o=u=n=d===--\r\n"
    ),
    # unusual reason phrase: UTF-8 and punctuation
    "utf8-reason": (
        b"SIP/2.0 200 = 2**4 + 1, \xd0\xb5\xd1\x89\xd1\x91 \xe6\x97\xa5\xe6\x9c\xac?! \\o/\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923\r\n"
        b"Call-ID: utf8-reason.1234asdfasdf\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"From: <sip:caller@example.com>;tag=39ansfi3\r\n"
        b"To: <sip:user@example.edu>;tag=902jndnke3\r\n"
        b"Content-Length: 0\r\n"
        b"Contact: <sip:user@host198.example.com>\r\n"
        b"\r\n"
    ),
    # empty reason phrase (the SP after the code is there)
    "empty-reason": (
        b"SIP/2.0 100 \r\n"
        b"Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\r\n"
        b"Call-ID: empty-reason.0a9234ksdfakj@example.com\r\n"
        b"CSeq: 35 INVITE\r\n"
        b"From: <sip:user@example.com>;tag=39ansfi3\r\n"
        b"To: <sip:user@example.com>;tag=902jndnke3\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    ),
    # status line with no SP and no reason at all (tolerated)
    "bare-status": (
        b"SIP/2.0 183\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\r\n"
        b"Call-ID: bare-status@example.com\r\n"
        b"CSeq: 35 INVITE\r\n"
        b"From: <sip:user@example.com>;tag=39ansfi3\r\n"
        b"To: sip:user@example.com;TAG = 902jndnke3\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    ),
    # to tag in all forms: addr-spec, compact name, uppercase name, SWS around '='
    "to-tag-forms": (
        b"SIP/2.0 180 Ringing\r\n"
        b"v: SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK-tt\r\n"
        b"i: to-tag-forms@example.com\r\n"
        b"CSeq: 2 INVITE\r\n"
        b'f: "A" <sip:a@example.com> ; TAG = a-1\r\n'
        b"t: sip:b@example.com;Tag=b-2\r\n"
        b"l: 0\r\n"
        b"\r\n"
    ),
    # every compact header form we know, mixed case
    "compact-forms": (
        b"SUBSCRIBE sip:presentity@example.com SIP/2.0\r\n"
        b"v: SIP/2.0/UDP 192.0.2.3;branch=z9hG4bK-cf\r\n"
        b"I: compact-forms@192.0.2.3\r\n"
        b"F: <sip:watcher@example.com>;tag=w1\r\n"
        b"T: <sip:presentity@example.com>\r\n"
        b"m: <sip:watcher@192.0.2.3>\r\n"
        b"o: presence\r\n"
        b"k: eventlist, timer\r\n"
        b"u: presence, dialog\r\n"
        b"s: compact subject\r\n"
        b"x: 1800;refresher=uac\r\n"
        b"r: <sip:other@example.com>\r\n"
        b"b: <sip:referrer@example.com>\r\n"
        b"e: gzip\r\n"
        b"c: text/plain\r\n"
        b"CSeq: 1 SUBSCRIBE\r\n"
        b"Max-Forwards: 70\r\n"
        b"L: 4\r\n"
        b"\r\n"
        b"ping"
    ),
    # case-insensitive names, schemes, hosts, parameter names, Via protocol and transport
    "mixed-case": (
        b"INFO SIP:Bob@BiloXi.Example.COM:5060;TRANSPORT=udp SIP/2.0\r\n"
        b"vIa: sip/2.0/udp PC33.Example.com;BRANCH=z9hG4bK-Mixed;Received=192.0.2.4\r\n"
        b"TO: <SIP:Bob@BILOXI.example.com>;TAG=AbC\r\n"
        b"fROM: <sIp:alice@Atlanta.Example.com>;tAg=xYz\r\n"
        b"call-id: MixedCase@Host\r\n"
        b"cSeQ: 7 INFO\r\n"
        b"max-FORWARDS: 70\r\n"
        b"CONTENT-length: 0\r\n"
        b"\r\n"
    ),
    # IPv6 references in Request-URI, Via (sent-by and received) and Contact
    "ipv6": (
        b"OPTIONS sip:[2001:db8::10]:5070 SIP/2.0\r\n"
        b"To: sip:user@[2001:db8::10]\r\n"
        b"From: sip:user@example.com;tag=81x2\r\n"
        b"Via: SIP/2.0/UDP [2001:db8::9:1]:5060;received=2001:db8::9:255;branch=z9hG4bKas3-111\r\n"
        b"Via: SIP/2.0/UDP [::ffff:192.0.2.77];branch=z9hG4bK-mapped\r\n"
        b"Call-ID: ipv6.SSG9559905523997077@hlau_4100\r\n"
        b"Max-Forwards: 70\r\n"
        b'Contact: "Caller" <sip:caller@[2001:DB8::9:255];transport=tcp>\r\n'
        b"CSeq: 921 OPTIONS\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    ),
    # multiple values on one line and on several lines (Via, Route, Contact)
    "multi-values": (
        b"REGISTER sip:registrar.example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK-a, SIP/2.0/TCP b.example.com"
        b";branch=z9hG4bK-b\r\n"
        b"Via: SIP/2.0/UDP c.example.com;branch=z9hG4bK-c\r\n"
        b"Route: <sip:p1.example.com;lr>,<sip:p2.example.com;lr>\r\n"
        b"Route: <sip:p3.example.com;lr>\r\n"
        b"To: <sip:u@example.com>\r\n"
        b"From: <sip:u@example.com>;tag=mv\r\n"
        b"Call-ID: multi-values@example.com\r\n"
        b"CSeq: 3 REGISTER\r\n"
        b"Contact: <sip:u@192.0.2.1>;expires=60, <sip:u@192.0.2.2>;q=0.5\r\n"
        b"Contact: sip:u@192.0.2.3\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    ),
    # quoted strings with escaped quotes, commas, <, > and ; inside
    "quoted-commas": (
        b"REGISTER sip:registrar.example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK-qc\r\n"
        b'To: "Smith, John \\"JJ\\"" <sip:jj@example.com>\r\n'
        b'From: "Smith, John \\"JJ\\"" <sip:jj@example.com>;tag=qc1\r\n'
        b"Call-ID: quoted-commas@example.com\r\n"
        b"CSeq: 1 REGISTER\r\n"
        b'Contact: "Doe, <Jane>; Esq." <sip:jane@192.0.2.9>;+sip.instance="<urn:uuid:1,2;3>",'
        b' "\\\\back\\\\slash" <sip:bs@192.0.2.9>\r\n'
        b"Content-Length: 0\r\n"
        b"\r\n"
    ),
    # Max-Forwards of zero is legal (the 483 is the layer above's call)
    "max-forwards-zero": (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b"To: sip:user@example.com\r\n"
        b"From: sip:caller@example.net;tag=3ghsd41\r\n"
        b"Call-ID: max-forwards-zero.fhhs0@192.0.2.1\r\n"
        b"CSeq: 39 OPTIONS\r\n"
        b"Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw\r\n"
        b"Max-Forwards: 0\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    ),
    # sips URIs with parameters, password and explicit port
    "sips-params": (
        b"INVITE sips:alice:secret@secure.example.com:5071;transport=tcp;lr;maddr=192.0.2.60"
        b" SIP/2.0\r\n"
        b"Via: SIP/2.0/TLS 192.0.2.60:5061;branch=z9hG4bK-sips\r\n"
        b"To: <sips:alice@secure.example.com;transport=tcp>\r\n"
        b"From: <sips:bob@secure.example.net>;tag=s1\r\n"
        b"Call-ID: sips-params@192.0.2.60\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"Max-Forwards: 70\r\n"
        b"Contact: <sips:bob@192.0.2.60:5061>\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    ),
    # tel URIs in Request-URI, To (name-addr) and From (addr-spec with header params)
    "tel-uris": (
        b"INVITE tel:+1-201-555-0123;phone-context=+1 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.61;branch=z9hG4bK-tel\r\n"
        b"To: <tel:+12015550123>\r\n"
        b"From: tel:7005;phone-context=example.com;tag=t1\r\n"
        b"Call-ID: tel-uris@192.0.2.61\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"Max-Forwards: 70\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    ),
    # wildcard Contact with Expires 0: un-register everything
    "wildcard-contact": (
        b"REGISTER sip:registrar.example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.62;branch=z9hG4bK-star\r\n"
        b"To: <sip:u@example.com>\r\n"
        b"From: <sip:u@example.com>;tag=star\r\n"
        b"Call-ID: wildcard-contact@192.0.2.62\r\n"
        b"CSeq: 9 REGISTER\r\n"
        b"Contact: *\r\n"
        b"Expires: 0\r\n"
        b"Max-Forwards: 70\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    ),
    # the same Content-Length twice with the same value
    "duplicate-same-length": (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.63;branch=z9hG4bK-dcl\r\n"
        b"To: <sip:user@example.com>\r\n"
        b"From: <sip:c@example.com>;tag=dcl\r\n"
        b"Call-ID: duplicate-same-length@192.0.2.63\r\n"
        b"CSeq: 1 OPTIONS\r\n"
        b"Content-Length: 2\r\n"
        b"l: 2\r\n"
        b"\r\n"
        b"hi"
    ),
    # bare LF line ends, CRLFs before the start line, no Content-Length in a datagram
    "bare-lf": (
        b"\r\n\r\n"
        b"OPTIONS sip:user@example.com SIP/2.0\n"
        b"Via: SIP/2.0/UDP 192.0.2.64;branch=z9hG4bK-lf\n"
        b"To: <sip:user@example.com>\n"
        b"From: <sip:c@example.com>;tag=lf\n"
        b"Call-ID: bare-lf@192.0.2.64\n"
        b"CSeq: 1 OPTIONS\n"
        b"\n"
        b"body without length\r\n"
    ),
    # lowercase method: a valid token, so a different (unknown) method, not INVITE
    "lowercase-method": (
        b"invite sip:user@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.65;branch=z9hG4bK-lc\r\n"
        b"To: <sip:user@example.com>\r\n"
        b"From: <sip:c@example.com>;tag=lc\r\n"
        b"Call-ID: lowercase-method@192.0.2.65\r\n"
        b"CSeq: 1 invite\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    ),
    # unknown URI schemes in To, From and Contact are legal (only the Request-URI must be ours)
    "unknown-scheme-headers": (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.66;branch=z9hG4bK-us\r\n"
        b"To: isbn:2983792873\r\n"
        b"From: <http://www.example.com/caller>;tag=us\r\n"
        b"Contact: <mailto:caller@example.com>\r\n"
        b"Call-ID: unknown-scheme-headers@192.0.2.66\r\n"
        b"CSeq: 1 OPTIONS\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    ),
    # escaped headers in the Request-URI
    "uri-headers": (
        b"INVITE sip:user@example.com?Subject=foo%20bar&Call-Info=%3Chttp://www.example.com%3E"
        b" SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.67;branch=z9hG4bK-uh\r\n"
        b"To: <sip:user@example.com?Replaces=abc%40host%3Bto-tag%3D1>\r\n"
        b"From: <sip:c@example.com>;tag=uh\r\n"
        b"Call-ID: uri-headers@192.0.2.67\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    ),
    # an invalid Date (bad timezone) is not the parser's business: Date is not parsed
    "bad-date": (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.68;branch=z9hG4bK-bd\r\n"
        b"To: <sip:user@example.com>\r\n"
        b"From: <sip:c@example.com>;tag=bd\r\n"
        b"Call-ID: bad-date@192.0.2.68\r\n"
        b"CSeq: 1 OPTIONS\r\n"
        b"Date: Fri, 01 Jan 2010 16:00:00 EST\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    ),
    # a typical INVITE with SDP, the common case
    "typical-invite": (
        b"INVITE sip:+15551234567@gw.example.com;user=phone SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n"
        b"Max-Forwards: 70\r\n"
        b"To: <sip:+15551234567@gw.example.com;user=phone>\r\n"
        b'From: "Alice" <sip:alice@pbx.example.org>;tag=1928301774\r\n'
        b"Call-ID: a84b4c76e66710@pc33.example.org\r\n"
        b"CSeq: 314159 INVITE\r\n"
        b"Contact: <sip:alice@192.0.2.10:5060>\r\n"
        b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n"
        b"Content-Type: application/sdp\r\n"
        b"Content-Length: 112\r\n"
        b"\r\n"
        b"v=0\r\n"
        b"o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n"
        b"s=-\r\n"
        b"c=IN IP4 192.0.2.10\r\n"
        b"t=0 0\r\n"
        b"m=audio 49170 RTP/AVP 0\r\n"
    ),
}

# name -> (message, where it is refused, a fragment of the reason)
INVALID: dict[str, tuple[bytes, str, str]] = {
    # extraneous header field separators in Via
    "extra-separators": (
        b"INVITE sip:user@example.com SIP/2.0\r\n"
        b"To: sip:j.user@example.com\r\n"
        b"From: sip:caller@example.net;tag=134161461246\r\n"
        b"Max-Forwards: 7\r\n"
        b"Call-ID: extra-separators.09ajgmanbfap@192.0.2.15\r\n"
        b"CSeq: 8 INVITE\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.15;;,;,,\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n",
        "check",
        "parameter",
    ),
    # empty parameter in From
    "extra-semicolons-from": (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bK-x\r\n"
        b"To: sip:j.user@example.com\r\n"
        b"From: <sip:caller@example.net>;;tag=1\r\n"
        b"Call-ID: extra-semicolons-from@192.0.2.15\r\n"
        b"CSeq: 8 OPTIONS\r\n"
        b"\r\n",
        "check",
        "empty parameter",
    ),
    # Content-Length larger than the message
    "length-too-large": (
        b"INVITE sip:user@example.com SIP/2.0\r\n"
        b"Max-Forwards: 80\r\n"
        b"To: sip:j.user@example.com\r\n"
        b"From: sip:caller@example.net;tag=93942939o2\r\n"
        b"Call-ID: length-too-large.0ha0isndaksdjweiafasdk3\r\n"
        b"CSeq: 8 INVITE\r\n"
        b"Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-39234-23523\r\n"
        b"Content-Type: application/sdp\r\n"
        b"Content-Length: 9999\r\n"
        b"\r\n"
        b"v=0\r\n",
        "parse",
        "larger than",
    ),
    # negative Content-Length
    "negative-length": (
        b"INVITE sip:user@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-ncl\r\n"
        b"To: sip:j.user@example.com\r\n"
        b"From: sip:caller@example.net;tag=1\r\n"
        b"Call-ID: negative-length@host5\r\n"
        b"CSeq: 8 INVITE\r\n"
        b"Content-Length: -999\r\n"
        b"\r\n"
        b"v=0\r\n",
        "parse",
        "Content-Length",
    ),
    # non-numeric Content-Length
    "alpha-length": (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-acl\r\n"
        b"Content-Length: 1O\r\n"
        b"\r\n"
        b"0123456789",
        "parse",
        "Content-Length",
    ),
    # non-ASCII digits in Content-Length (str.isdigit() would say yes)
    "unicode-digit-length": (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-ucl\r\n"
        b"Content-Length: \xd9\xa3\r\n"
        b"\r\n"
        b"abc",
        "parse",
        "Content-Length",
    ),
    # two Content-Length values that disagree
    "conflicting-lengths": (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-ccl\r\n"
        b"Content-Length: 2\r\n"
        b"l: 3\r\n"
        b"\r\n"
        b"abc",
        "parse",
        "different values",
    ),
    # CSeq number of 2**65: overlarge scalar
    "cseq-overlarge": (
        b"REGISTER sip:example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3\r\n"
        b"To: <sip:user@example.com>\r\n"
        b"From: <sip:user@example.com>;tag=239232jh3\r\n"
        b"CSeq: 36893488147419103232 REGISTER\r\n"
        b"Call-ID: cseq-overlarge.23l4jasdfqlkjqwer@host129\r\n"
        b"Max-Forwards: 70\r\n"
        b"Contact: <sip:user@host129.example.com>;expires=" + b"1" * 100 + b"\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n",
        "check",
        "CSeq",
    ),
    # CSeq number of exactly 2**31
    "cseq-2-31": (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-c31\r\n"
        b"To: <sip:user@example.com>\r\n"
        b"From: <sip:user@example.com>;tag=1\r\n"
        b"CSeq: 2147483648 OPTIONS\r\n"
        b"Call-ID: cseq-2-31@host5\r\n"
        b"\r\n",
        "check",
        "CSeq",
    ),
    # Max-Forwards far above 255
    "max-forwards-huge": (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-mfh\r\n"
        b"To: <sip:user@example.com>\r\n"
        b"From: <sip:user@example.com>;tag=1\r\n"
        b"CSeq: 1 OPTIONS\r\n"
        b"Call-ID: max-forwards-huge@host5\r\n"
        b"Max-Forwards: 300\r\n"
        b"\r\n",
        "check",
        "Max-Forwards",
    ),
    # unterminated quoted string in a display name
    "unterminated-quote": (
        b"INVITE sip:user@example.com SIP/2.0\r\n"
        b'To: "Mr. J. User <sip:j.user@example.com>\r\n'
        b"From: sip:caller@example.net;tag=93334\r\n"
        b"Max-Forwards: 10\r\n"
        b"Call-ID: unterminated-quote.0ha0isndaksdj@192.0.2.15\r\n"
        b"CSeq: 0 INVITE\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.15:5060;branch=z9hG4bKkdjuw\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n",
        "check",
        "unterminated",
    ),
    # <> enclosing the Request-URI
    "bracketed-request-uri": (
        b"INVITE <sip:user@example.com> SIP/2.0\r\n"
        b"To: sip:user@example.com\r\n"
        b"From: sip:caller@example.net;tag=39291\r\n"
        b"Call-ID: bracketed-request-uri@host\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.5;branch=z9hG4bK-b\r\n"
        b"\r\n",
        "parse",
        "<>",
    ),
    # embedded LWS in the Request-URI
    "lws-in-request-uri": (
        b"INVITE sip:user@example.com; lr SIP/2.0\r\n"
        b"To: sip:user@example.com;tag=3xfe-9921883-z9f\r\n"
        b"From: sip:caller@example.net;tag=231413434\r\n"
        b"Call-ID: lws-in-request-uri@host\r\n"
        b"CSeq: 2 INVITE\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.5;branch=z9hG4bK-l\r\n"
        b"\r\n",
        "parse",
        "request line",
    ),
    # multiple SP separating the Request-Line elements
    "multiple-sp-start": (
        b"INVITE  sip:user@example.com  SIP/2.0\r\n"
        b"To: sip:user@example.com\r\n"
        b"From: sip:caller@example.net;tag=2234923\r\n"
        b"Call-ID: multiple-sp-start@host\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.5;branch=z9hG4bK-m\r\n"
        b"\r\n",
        "parse",
        "request line",
    ),
    # SP at the end of the Request-Line
    "trailing-sp-start": (
        b"OPTIONS sip:remote-target@example.com SIP/2.0  \r\n"
        b"Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK299342093\r\n"
        b"To: <sip:remote-target@example.com>\r\n"
        b"From: <sip:local-resource@example.com>;tag=329429089\r\n"
        b"Call-ID: trailing-sp-start.asdfasdoeoi2323-asdfwrn23-asd834rk423\r\n"
        b"CSeq: 1 OPTIONS\r\n"
        b"\r\n",
        "parse",
        "request line",
    ),
    # junk (unescaped < > and a space-free but illegal character) in Request-URI headers
    "junk-uri-headers": (
        b"INVITE sip:user@example.com?Route=<sip:example.com> SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.5;branch=z9hG4bK-j\r\n"
        b"\r\n",
        "parse",
        "Request-URI",
    ),
    # '%' that is not an escape inside a URI user part
    "bad-escape-in-uri": (
        b"INVITE sip:us%zzer@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.5;branch=z9hG4bK-e\r\n"
        b"\r\n",
        "parse",
        "%HH",
    ),
    # URI with headers in Contact without <> (the '?' part cannot belong to an addr-spec)
    "unbracketed-uri-headers": (
        b"REGISTER sip:example.com SIP/2.0\r\n"
        b"To: sip:user@example.com\r\n"
        b"From: sip:user@example.com;tag=998332\r\n"
        b"Max-Forwards: 70\r\n"
        b"Call-ID: unbracketed-uri-headers.0ha0isndaksdj@10.0.0.1\r\n"
        b"CSeq: 29 REGISTER\r\n"
        b"Via: SIP/2.0/UDP 135.180.130.133;branch=z9hG4bKkdjuw\r\n"
        b"Contact: sip:user@example.com?Route=%3Csip:sip.example.com%3E\r\n"
        b"l: 0\r\n"
        b"\r\n",
        "check",
        "angle brackets",
    ),
    # spaces within addr-spec (inside the <>)
    "spaces-in-addr-spec": (
        b"OPTIONS sip:user@example.org SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP host4.example.com:5060;branch=z9hG4bKkdju43234\r\n"
        b"Max-Forwards: 70\r\n"
        b'From: "Bell, Alexander" <sip:a.g.bell@example.com>;tag=433423\r\n'
        b'To: "Watson, Thomas" < sip:t.watson@example.org >\r\n'
        b"Call-ID: spaces-in-addr-spec.askdfjwerfljdsfaa\r\n"
        b"CSeq: 3923239 OPTIONS\r\n"
        b"l: 0\r\n"
        b"\r\n",
        "check",
        "spaces",
    ),
    # non-token characters in an unquoted display name
    "unquoted-display-comma": (
        b"OPTIONS sip:t.watson@example.org SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP c.example.com:5060;branch=z9hG4bKkdjuw\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: Bell, Alexander <sip:a.g.bell@example.com>;tag=43\r\n"
        b"To: Watson, Thomas <sip:t.watson@example.org>\r\n"
        b"Call-ID: unquoted-display-comma.31415@c.example.com\r\n"
        b"CSeq: 3923239 OPTIONS\r\n"
        b"l: 0\r\n"
        b"\r\n",
        "check",
        "display name",
    ),
    # unknown protocol version
    "sip-7": (
        b"OPTIONS sip:t.watson@example.org SIP/7.0\r\n"
        b"Via: SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe\r\n"
        b"To: T. Watson <sip:t.watson@example.org>\r\n"
        b"Call-ID: sip-7.31417@c.example.com\r\n"
        b"CSeq: 1 OPTIONS\r\n"
        b"l: 0\r\n"
        b"\r\n",
        "parse",
        "version",
    ),
    # start line method and CSeq method differ
    "cseq-method-mismatch": (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b"To: sip:j.user@example.com\r\n"
        b"From: sip:caller@example.net;tag=34525\r\n"
        b"Max-Forwards: 6\r\n"
        b"Call-ID: cseq-method-mismatch.0ha0isndaksdj\r\n"
        b"CSeq: 8 INVITE\r\n"
        b"Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw\r\n"
        b"l: 0\r\n"
        b"\r\n",
        "check",
        "CSeq method",
    ),
    # unknown method whose CSeq names another method
    "unknown-method-mismatch": (
        b"NEWMETHOD sip:user@example.com SIP/2.0\r\n"
        b"To: sip:j.user@example.com\r\n"
        b"From: sip:caller@example.net;tag=34525\r\n"
        b"Max-Forwards: 6\r\n"
        b"Call-ID: unknown-method-mismatch.0ha0isndaksdj\r\n"
        b"CSeq: 8 INVITE\r\n"
        b"Via: SIP/2.0/UDP host.example.net;branch=z9hG4bKkdjuw\r\n"
        b"l: 0\r\n"
        b"\r\n",
        "check",
        "CSeq method",
    ),
    # lowercase CSeq method against an uppercase request method (methods are case-sensitive)
    "cseq-method-case": (
        b"INVITE sip:user@example.com SIP/2.0\r\n"
        b"To: sip:j.user@example.com\r\n"
        b"From: sip:caller@example.net;tag=34525\r\n"
        b"Call-ID: cseq-method-case@host\r\n"
        b"CSeq: 8 invite\r\n"
        b"Via: SIP/2.0/UDP host.example.net;branch=z9hG4bKkdjuw\r\n"
        b"\r\n",
        "check",
        "CSeq method",
    ),
    # missing mandatory headers (Call-ID, From, To, CSeq, Via)
    "missing-headers": (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP host.example.net;branch=z9hG4bK-mh\r\n"
        b"Max-Forwards: 70\r\n"
        b"l: 0\r\n"
        b"\r\n",
        "check",
        "missing",
    ),
    # missing Via only
    "missing-via": (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b"To: sip:j.user@example.com\r\n"
        b"From: sip:caller@example.net;tag=1\r\n"
        b"Call-ID: missing-via@host\r\n"
        b"CSeq: 8 OPTIONS\r\n"
        b"\r\n",
        "check",
        "missing Via",
    ),
    # single-valued headers given twice
    "two-call-ids": (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP host.example.net;branch=z9hG4bK-tc\r\n"
        b"To: sip:j.user@example.com\r\n"
        b"From: sip:caller@example.net;tag=1\r\n"
        b"Call-ID: two-call-ids-1@host\r\n"
        b"i: two-call-ids-2@host\r\n"
        b"CSeq: 8 OPTIONS\r\n"
        b"\r\n",
        "check",
        "more than once",
    ),
    # two To headers
    "two-tos": (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP host.example.net;branch=z9hG4bK-tt\r\n"
        b"To: sip:j.user@example.com\r\n"
        b"To: sip:other@example.com\r\n"
        b"From: sip:caller@example.net;tag=1\r\n"
        b"Call-ID: two-tos@host\r\n"
        b"CSeq: 8 OPTIONS\r\n"
        b"\r\n",
        "check",
        "more than once",
    ),
    # response code far out of range
    "status-overlarge": (
        b"SIP/2.0 4294967301 better not break the receiver\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\r\n"
        b"Call-ID: status-overlarge.0ha0isnda977644900765@192.0.2.15\r\n"
        b"CSeq: 353494 INVITE\r\n"
        b"From: <sip:user@example.com>;tag=39ansfi3\r\n"
        b"To: <sip:user@example.edu>;tag=902jndnke3\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n",
        "parse",
        "status code",
    ),
    # response code below 100
    "status-099": (b"SIP/2.0 099 Too Low\r\nContent-Length: 0\r\n\r\n", "parse", "status code"),
    # response code above 699
    "status-700": (b"SIP/2.0 700 Too High\r\nContent-Length: 0\r\n\r\n", "parse", "status code"),
    # non-numeric response code
    "status-alpha": (b"SIP/2.0 2OO OK\r\nContent-Length: 0\r\n\r\n", "parse", "status code"),
    # response of another version
    "response-sip-3": (b"SIP/3.0 200 OK\r\nContent-Length: 0\r\n\r\n", "parse", "version"),
    # message over the size limit
    "too-large": (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b"X-Padding: " + b"p" * MAX_MESSAGE_SIZE + b"\r\n"
        b"\r\n",
        "parse",
        "too large",
    ),
    # NUL byte in a header value
    "nul-in-header": (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP host.example.net;branch=z9hG4bK-nul\r\n"
        b"Subject: before\x00after\r\n"
        b"\r\n",
        "parse",
        "control character",
    ),
    # a bare CR inside a header line
    "bare-cr-in-header": (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP host.example.net;branch=z9hG4bK-cr\r\n"
        b"Subject: one\rInjected: two\r\n"
        b"\r\n",
        "parse",
        "control character",
    ),
    # header name with a space inside
    "space-in-header-name": (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP host.example.net;branch=z9hG4bK-sp\r\n"
        b"Max Forwards: 70\r\n"
        b"\r\n",
        "parse",
        "header name",
    ),
    # header line without a colon
    "no-colon": (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b"Via SIP/2.0/UDP host.example.net;branch=z9hG4bK-nc\r\n"
        b"\r\n",
        "parse",
        "malformed header line",
    ),
    # continuation line before any header
    "leading-continuation": (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b" Via: SIP/2.0/UDP host.example.net;branch=z9hG4bK-lc\r\n"
        b"\r\n",
        "parse",
        "continuation",
    ),
    # header not terminated by an empty line
    "no-empty-line": (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP host.example.net;branch=z9hG4bK-ne\r\n",
        "parse",
        "empty line",
    ),
    # a Request-URI of a scheme we do not serve (416)
    "unknown-scheme-request-uri": (
        b"OPTIONS nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP host.example.net;branch=z9hG4bK-us\r\n"
        b"\r\n",
        "parse",
        "scheme",
    ),
    # Via with an invalid IPv6 reference
    "bad-ipv6-via": (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP [2001:db8:::192.0.2.1];branch=z9hG4bK-v6\r\n"
        b"To: sip:j.user@example.com\r\n"
        b"From: sip:caller@example.net;tag=1\r\n"
        b"Call-ID: bad-ipv6-via@host\r\n"
        b"CSeq: 8 OPTIONS\r\n"
        b"\r\n",
        "check",
        "IPv6",
    ),
    # IPv6 reference in the Request-URI without brackets
    "unbracketed-ipv6-request-uri": (
        b"OPTIONS sip:user@2001:db8::10 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP host.example.net;branch=z9hG4bK-v6\r\n"
        b"\r\n",
        "parse",
        "Request-URI",
    ),
    # port out of range in Via
    "via-port-overlarge": (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP host.example.net:99999;branch=z9hG4bK-port\r\n"
        b"To: sip:j.user@example.com\r\n"
        b"From: sip:caller@example.net;tag=1\r\n"
        b"Call-ID: via-port-overlarge@host\r\n"
        b"CSeq: 8 OPTIONS\r\n"
        b"\r\n",
        "check",
        "port",
    ),
    # Via of another protocol version
    "via-version": (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b"Via: SIP/1.0/UDP host.example.net;branch=z9hG4bK-vv\r\n"
        b"To: sip:j.user@example.com\r\n"
        b"From: sip:caller@example.net;tag=1\r\n"
        b"Call-ID: via-version@host\r\n"
        b"CSeq: 8 OPTIONS\r\n"
        b"\r\n",
        "check",
        "Via",
    ),
    # a tab instead of SP in the Request-Line
    "tab-in-start-line": (
        b"OPTIONS\tsip:user@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP host.example.net;branch=z9hG4bK-tab\r\n"
        b"\r\n",
        "parse",
        "request line",
    ),
    # junk after the > of a name-addr
    "junk-after-name-addr": (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP host.example.net;branch=z9hG4bK-jn\r\n"
        b"To: <sip:j.user@example.com> junk\r\n"
        b"From: sip:caller@example.net;tag=1\r\n"
        b"Call-ID: junk-after-name-addr@host\r\n"
        b"CSeq: 8 OPTIONS\r\n"
        b"\r\n",
        "check",
        "';'",
    ),
}


def _parse(raw: bytes) -> SipRequest | SipResponse:
    message = parse_message(raw)
    assert isinstance(message, SipRequest | SipResponse)
    return message


def _fields(message: SipRequest | SipResponse) -> dict[str, object]:
    """Everything a consumer looks at, for field-by-field comparison."""
    fields: dict[str, object] = {
        "headers": [(n, v) for n, v in message.headers if n != "Content-Length"],
        "body": message.body,
        "call_id": message.call_id,
        "vias": message.vias,
        "from": message.from_,
        "to": message.to,
        "contacts": message.contacts,
        "cseq": message.cseq,
    }
    if isinstance(message, SipRequest):
        fields.update(method=message.method, uri=message.uri, uri_text=str(message.uri))
    else:
        fields.update(status=message.status, reason=message.reason)
    return fields


@pytest.mark.parametrize("name", VALID)
def test_valid_message_parses_and_checks(name: str) -> None:
    message = _parse(VALID[name])
    if isinstance(message, SipRequest):
        check_request(message)
    else:
        check_response(message)


@pytest.mark.parametrize("name", VALID)
def test_round_trip(name: str) -> None:
    first = _parse(VALID[name])
    wire = first.serialize()
    second = _parse(wire)
    assert _fields(second) == _fields(first)
    # and serializing again is stable
    assert second.serialize() == wire


@pytest.mark.parametrize("name", VALID)
def test_serialize_rewrites_length_and_expands_names(name: str) -> None:
    message = _parse(VALID[name])
    wire = message.serialize()
    head, _, body = wire.partition(b"\r\n\r\n")
    assert body == message.body
    lines = head.split(b"\r\n")[1:]
    assert [line for line in lines if line.lower().startswith(b"content-length")] == [
        b"Content-Length: %d" % len(message.body)
    ]
    for line in lines:
        name = line.partition(b":")[0].decode()
        assert name.lower() not in COMPACT, line
        assert not line.startswith((b" ", b"\t")), "folded lines are joined"


@pytest.mark.parametrize("name", INVALID)
def test_invalid_message_refused(name: str) -> None:
    raw, stage, fragment = INVALID[name]
    with pytest.raises(SipParseError) as caught:
        message = parse_message(raw)
        assert stage == "check", f"parse_message accepted {name}"
        assert isinstance(message, SipRequest)
        check_request(message)
    if stage == "check":  # the parser itself must have let it through
        parse_message(raw)
    assert fragment.lower() in caught.value.reason.lower(), caught.value.reason


# -- what the valid messages must parse to ----------------------------------------------------


def test_tortuous() -> None:
    message = _parse(VALID["tortuous"])
    assert isinstance(message, SipRequest)
    assert message.method == "INVITE"
    assert message.uri.user == "%61lice;ext=7%37"
    assert message.uri.host == "gw-1.example.net"
    assert message.uri.params == {"unknownparam": None}
    assert message.to.uri.user == "alice" and message.to.tag == "1a2b3c"
    assert message.from_.display_name == 'Caller "Q" Public'
    assert message.from_.uri.host == "[2001:db8::c0:1]"
    assert message.from_.tag == "98asjd8"
    assert message.max_forwards == 68
    assert message.cseq == (9, "INVITE")
    assert [(v.transport, v.host, v.branch) for v in message.vias] == [
        ("UDP", "192.0.2.2", "z9hG4bK390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert message.headers.get("Subject") == ""
    assert message.headers.get("newfangledheader") == (
        "newfangled value continued newfangled value"
    )
    assert message.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    (contact,) = message.contacts
    assert contact.display_name == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert message.body == b"v=0\r\no=- 1 1 IN IP4 192.0.2.2\r\ns=-\r\n"


def test_valid_chars() -> None:
    message = _parse(VALID["valid-chars"])
    assert isinstance(message, SipRequest)
    assert message.method == "!Odd-Meth0d_*+`.%looks'~fine"
    assert message.uri.user == "1_odd.URI~(sure!)&isn't+it$/mad?,/;;*"
    assert message.uri.password == "&pw+is=1,odd!*pa$$wo~d_(yes)"
    assert message.uri.host == "example.com"
    assert message.to.display_name == '€ "\\ rich été'
    assert message.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert message.from_.tag == "_token~1'+`*%!-."
    assert message.from_.params["fromparam''~+*_!.-%"] == '"работа"'
    assert message.call_id == "valid-chars.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert message.headers.get("extensionHeader-!.%*+_`'~") == "\ufeffbigger than yours"


def test_uri_escapes_kept_as_written() -> None:
    message = _parse(VALID["uri-escapes"])
    assert message.uri.user == "s%70ecial%20user"
    assert message.from_.uri.user == "I%20have%20spaces"
    (contact,) = message.contacts
    assert contact.uri.params == {"%6c%72": None, "n%61me": "v%61lue%25%34%31"}


def test_escaped_null() -> None:
    message = _parse(VALID["escaped-null"])
    assert message.to.uri.user == "nul-%00-nul"
    assert [c.uri.user for c in message.contacts] == ["%00", "nul-%00%00-nul"]


def test_percent_not_escape() -> None:
    message = _parse(VALID["percent-not-escape"])
    assert isinstance(message, SipRequest)
    assert message.method == "RE%47IST%45R"
    assert message.to.display_name == "%Z%45"
    assert message.contacts[0].display_name == "%lt%gt%"


def test_no_lws_display() -> None:
    message = _parse(VALID["no-lws-display"])
    assert message.from_.display_name == "caller"
    assert message.from_.tag == "323"
    assert message.contacts[0].display_name == "Quoted"


def test_long_values() -> None:
    message = _parse(VALID["long-values"])
    assert len(message.vias) == 41
    assert message.vias[-1].branch == "z9hG4bK" + "x" * 300
    assert len(message.from_.tag or "") == 400
    assert message.to.display_name is not None and len(message.to.display_name) > 400


def test_trailing_octets_ignored() -> None:
    message = _parse(VALID["trailing-octets"])
    assert isinstance(message, SipRequest)
    assert message.method == "REGISTER"
    assert message.body == b""


def test_user_params() -> None:
    message = _parse(VALID["user-params"])
    assert message.uri.user == "user;par=u%40example.net"
    assert message.uri.host == "example.com"
    assert message.from_.uri.user == "user;day=tuesday"
    assert message.from_.uri.params == {"maddr": "239.255.255.1"}
    assert message.from_.tag == "23"


def test_transports() -> None:
    message = _parse(VALID["transports"])
    assert isinstance(message, SipRequest)
    assert message.uri.transport == "sctp"
    assert [v.transport for v in message.vias] == [
        "UDP",
        "SCTP",
        "TLS",
        "UNKNOWN",
        "TCP",
        "TLS-SCTP",
    ]
    assert message.contacts[0].uri.transport == "mystery-wire"


def test_multipart_body_is_opaque() -> None:
    message = _parse(VALID["multipart"])
    assert len(message.body) == 152
    assert message.body.endswith(b"--===b=o=u=n=d===--\r\n")
    assert b"\x00\xff\xfe\r\n\r\n\x80" in message.body


def test_reasons() -> None:
    utf8 = _parse(VALID["utf8-reason"])
    assert isinstance(utf8, SipResponse)
    assert utf8.status == 200 and utf8.reason == "= 2**4 + 1, ещё 日本?! \\o/"
    empty = _parse(VALID["empty-reason"])
    assert isinstance(empty, SipResponse)
    assert (empty.status, empty.reason) == (100, "")
    bare = _parse(VALID["bare-status"])
    assert isinstance(bare, SipResponse)
    assert (bare.status, bare.reason) == (183, "")
    assert bare.to.tag == "902jndnke3"


def test_to_tag_forms() -> None:
    message = _parse(VALID["to-tag-forms"])
    assert message.from_.tag == "a-1"
    assert message.to.tag == "b-2"
    assert message.to.uri.params == {}


def test_compact_forms_expanded() -> None:
    message = _parse(VALID["compact-forms"])
    names = [name for name, _ in message.headers]
    assert names == [
        "Via", "Call-ID", "From", "To", "Contact", "Event", "Supported", "Allow-Events",
        "Subject", "Session-Expires", "Refer-To", "Referred-By", "Content-Encoding",
        "Content-Type", "CSeq", "Max-Forwards", "Content-Length",
    ]  # fmt: skip
    assert message.body == b"ping"
    assert message.headers.get_all("k") == ["eventlist", "timer"]


def test_mixed_case() -> None:
    message = _parse(VALID["mixed-case"])
    assert isinstance(message, SipRequest)
    assert message.uri.scheme == "sip" and message.uri.host == "biloxi.example.com"
    assert message.uri.user == "Bob"  # the user part is case-sensitive
    assert message.uri.transport == "udp"
    via = message.top_via
    assert via.transport == "UDP" and via.branch == "z9hG4bK-Mixed" and via.received == "192.0.2.4"
    assert message.to.tag == "AbC" and message.from_.tag == "xYz"
    assert message.call_id == "MixedCase@Host"


def test_ipv6() -> None:
    message = _parse(VALID["ipv6"])
    assert isinstance(message, SipRequest)
    assert message.uri.host == "[2001:db8::10]" and message.uri.port == 5070
    assert message.uri.address() == ("2001:db8::10", 5070)
    first, second = message.vias
    assert (first.host, first.port, first.received) == ("[2001:db8::9:1]", 5060, "2001:db8::9:255")
    assert second.host == "[::ffff:192.0.2.77]" and second.port is None
    assert message.contacts[0].uri.host == "[2001:db8::9:255]"


def test_multi_values() -> None:
    message = _parse(VALID["multi-values"])
    assert [v.branch for v in message.vias] == ["z9hG4bK-a", "z9hG4bK-b", "z9hG4bK-c"]
    assert message.headers.get_all("Route") == [
        "<sip:p1.example.com;lr>",
        "<sip:p2.example.com;lr>",
        "<sip:p3.example.com;lr>",
    ]
    assert [str(c.uri) for c in message.contacts] == [
        "sip:u@192.0.2.1",
        "sip:u@192.0.2.2",
        "sip:u@192.0.2.3",
    ]
    assert message.contacts[0].params == {"expires": "60"}


def test_quoted_commas() -> None:
    message = _parse(VALID["quoted-commas"])
    assert message.to.display_name == 'Smith, John "JJ"'
    first, second = message.contacts
    assert first.display_name == "Doe, <Jane>; Esq."
    assert first.params == {"+sip.instance": '"<urn:uuid:1,2;3>"'}
    assert second.display_name == "\\back\\slash"


def test_max_forwards_zero() -> None:
    assert _parse(VALID["max-forwards-zero"]).max_forwards == 0


def test_sips_params() -> None:
    message = _parse(VALID["sips-params"])
    uri = message.uri
    assert (uri.scheme, uri.user, uri.password, uri.port) == ("sips", "alice", "secret", 5071)
    assert uri.params == {"transport": "tcp", "lr": None, "maddr": "192.0.2.60"}
    assert uri.transport == "tls"
    assert message.to.uri.address() == ("secure.example.com", 5061)


def test_tel_uris() -> None:
    message = _parse(VALID["tel-uris"])
    assert (message.uri.scheme, message.uri.user) == ("tel", "+1-201-555-0123")
    assert message.uri.params == {"phone-context": "+1"}
    assert message.to.uri.user == "+12015550123"
    # addr-spec: the parameters after ';' belong to the header, not to the URI
    assert message.from_.uri.params == {}
    assert message.from_.params == {"phone-context": "example.com", "tag": "t1"}


def test_wildcard_contact() -> None:
    message = _parse(VALID["wildcard-contact"])
    (contact,) = message.contacts
    assert contact.wildcard and str(contact) == "*"
    assert message.headers.get("Expires") == "0"


def test_bare_lf_without_length() -> None:
    message = _parse(VALID["bare-lf"])
    assert message.body == b"body without length\r\n"
    assert message.call_id == "bare-lf@192.0.2.64"


def test_lowercase_method_is_another_method() -> None:
    message = _parse(VALID["lowercase-method"])
    assert isinstance(message, SipRequest)
    assert message.method == "invite"
    assert message.cseq == (1, "invite")


def test_unknown_schemes_in_headers() -> None:
    message = _parse(VALID["unknown-scheme-headers"])
    assert (message.to.uri.scheme, message.to.uri.opaque) == ("isbn", "2983792873")
    assert not message.to.uri.is_sip
    assert str(message.from_.uri) == "http://www.example.com/caller"
    assert str(message.contacts[0].uri) == "mailto:caller@example.com"


def test_uri_headers() -> None:
    message = _parse(VALID["uri-headers"])
    assert message.uri.headers == "Subject=foo%20bar&Call-Info=%3Chttp://www.example.com%3E"
    assert message.to.uri.headers == "Replaces=abc%40host%3Bto-tag%3D1"


def test_typical_invite() -> None:
    message = _parse(VALID["typical-invite"])
    assert message.body.startswith(b"v=0\r\n") and message.body.endswith(b"RTP/AVP 0\r\n")
    assert message.headers.get_all("Allow") == ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS"]


# -- statuses and stream framing ----------------------------------------------------------------


def test_error_statuses() -> None:
    def status(raw: bytes) -> int:
        with pytest.raises(SipParseError) as caught:
            parse_message(raw)
        return caught.value.status

    assert status(INVALID["sip-7"][0]) == 505
    assert status(INVALID["unknown-scheme-request-uri"][0]) == 416
    assert status(INVALID["too-large"][0]) == 513
    assert status(INVALID["bracketed-request-uri"][0]) == 400


def test_stream_requires_content_length() -> None:
    raw = VALID["bare-lf"]
    with pytest.raises(SipParseError, match="Content-Length"):
        parse_message(raw, stream=True)
    assert parse_message(VALID["typical-invite"], stream=True).body.endswith(b"0\r\n")


def test_lengths_are_right() -> None:
    """Guard the suite itself: valid messages carry exactly their body (but the one that must
    not)."""
    for name, raw in VALID.items():
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if not sep or name == "trailing-octets":
            continue
        for line in head.split(b"\r\n"):
            key, _, value = line.partition(b":")
            if key.strip().lower() in (b"content-length", b"l"):
                assert int(value) == len(rest), name


def test_blank_continuation_lines() -> None:
    raw = (
        b"OPTIONS sip:a@b SIP/2.0\r\nSubject: one \r\n \r\n\t two\r\n   \r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    message = _parse(raw)
    assert message.headers.get("Subject") == "one two"


def test_mutations_never_crash() -> None:
    """Random damage to the valid messages: refused with SipParseError, or accepted and then
    round-tripping like any valid message; never another exception."""
    rng = random.Random(4475)
    alphabet = b' \t\r\n:;,<>"\\%@?=[]/.09aSIP\x00\xff'
    messages = list(VALID.values())
    accepted = 0
    for _ in range(3000):
        raw = bytearray(rng.choice(messages))
        for _ in range(rng.randint(1, 3)):
            position = rng.randrange(len(raw))
            choice = rng.random()
            if choice < 0.4:
                raw[position] = rng.choice(alphabet)
            elif choice < 0.7:
                raw.insert(position, rng.choice(alphabet))
            else:
                del raw[position]
        try:
            message = _parse(bytes(raw))
            if isinstance(message, SipRequest):
                check_request(message)
            else:
                check_response(message)
        except SipParseError:
            continue
        accepted += 1
        assert _fields(_parse(message.serialize())) == _fields(message)
    assert accepted > 300
