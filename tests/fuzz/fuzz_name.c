/*
 * libFuzzer target: the registry name codec.  The first byte picks the
 * direction.  decode: the rest is a registry name; one that decodes must
 * encode back to a name that decodes to the same address.  encode: the
 * rest is a sun_path (abstract when it starts with NUL); a name it
 * encodes to must decode, and encode again to itself.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tssx/registry_name.h"

static void roundtrip(const struct sockaddr_un *addr, socklen_t len)
{
	char name[TSSX_REGISTRY_NAME_MAX], again[TSSX_REGISTRY_NAME_MAX];
	struct sockaddr_un back;
	socklen_t back_len;

	if (tssx_registry_name_encode(addr, len, "/", name, sizeof(name)) != 0)
		return;
	if (strlen(name) >= sizeof(name) || tssx_registry_name_decode(name, &back, &back_len) != 0)
		abort();
	if (tssx_registry_name_encode(&back, back_len, "/", again, sizeof(again)) != 0 || strcmp(name, again))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	socklen_t len;

	if (size < 1)
		return 0;
	if (data[0] & 1) {
		char name[4 * TSSX_REGISTRY_NAME_MAX];
		size_t n = size - 1 < sizeof(name) - 1 ? size - 1 : sizeof(name) - 1;

		memcpy(name, data + 1, n);
		name[n] = '\0';
		if (tssx_registry_name_decode(name, &addr, &len) == 0) {
			if (len > sizeof(addr) || addr.sun_family != AF_UNIX)
				abort();
			roundtrip(&addr, len);
		}
		return 0;
	}
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
			  (size - 1 < sizeof(addr.sun_path) ? size - 1 : sizeof(addr.sun_path)));
	memcpy(addr.sun_path, data + 1, len - offsetof(struct sockaddr_un, sun_path));
	roundtrip(&addr, len);
	return 0;
}
