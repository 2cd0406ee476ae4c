/*
 * kamailio-ice: libFuzzer target for lib/dtls and the SDES parser of
 * lib/srtp.
 *
 * The first input byte picks the role of a fresh association (client:
 * started first, so the input answers its ClientHello); the rest is a
 * sequence of datagrams, each preceded by a 2-byte big-endian length and
 * copied into an exact-size heap buffer so ASan reports any overread.
 * The whole input is also parsed as an a=crypto value.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dtls.h"
#include "srtp.h"

static struct kice_dtls_cert *cert;

/* sha-256 of no certificate in particular: the handshake never passes
 * the fingerprint check, everything before it is exercised */
static const char fp[] =
		"00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:"
		"00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";

static void sink(void *ctx, const uint8_t *pkt, size_t len)
{
	(void)ctx;
	(void)pkt;
	(void)len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kice_dtls *d;
	struct kice_sdes sd;
	uint64_t now = 1000000;
	uint8_t *buf;
	size_t n;

	buf = malloc(size ? size : 1);
	if(buf == NULL)
		return 0;
	if(size)
		memcpy(buf, data, size);
	(void)kice_sdes_parse(kice_slice_make((const char *)buf, size), &sd);
	free(buf);

	if(cert == NULL && kice_dtls_cert_create(&cert) != 0)
		abort();
	if(size < 1)
		return 0;
	if(kice_dtls_create(&d, cert,
			   data[0] & 1 ? KICE_DTLS_CLIENT : KICE_DTLS_SERVER, "sha-256", fp,
			   sink, NULL)
			!= 0)
		abort();
	if(data[0] & 1)
		(void)kice_dtls_start(d, now);
	data++;
	size--;
	while(size >= 2) {
		n = (size_t)data[0] << 8 | data[1];
		data += 2;
		size -= 2;
		if(n > size)
			n = size;
		buf = malloc(n ? n : 1);
		if(buf == NULL)
			break;
		memcpy(buf, data, n);
		(void)kice_dtls_input(d, now, buf, n);
		free(buf);
		data += n;
		size -= n;
		now += 100000;
		kice_dtls_tick(d, now);
	}
	kice_dtls_destroy(d);
	return 0;
}
