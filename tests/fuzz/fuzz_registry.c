/*
 * libFuzzer target: what a hostile client of the registry daemon can send
 * it: names to look up, create, mkdir and rmdir (any bytes), and the bytes
 * of its writes (the write parser), in any order, against the daemon's
 * table.  The harness keeps the kernel's side of the contract (it forgets
 * only what it looked up, uses only handles it holds); the table must
 * survive everything else without a crash, a leak or a sanitizer report.
 */
#include <stdlib.h>
#include <string.h>

#include "table.h"
#include "tssx/log.h"
#include "tssx/registry_name.h"
#include "tssx/registry_protocol.h"

#define SLOTS 16

struct input {
	const uint8_t *data;
	size_t left;
};

static unsigned take(struct input *in)
{
	if (!in->left)
		return 0;
	in->left--;
	return *in->data++;
}

/* A name of up to 255 input bytes, NUL-terminated. */
static const char *take_name(struct input *in, char *buf)
{
	size_t len = take(in);

	if (len > in->left)
		len = in->left;
	memcpy(buf, in->data, len);
	buf[len] = '\0';
	in->data += len;
	in->left -= len;
	return buf;
}

struct looked_up {
	uint64_t ino;
	uint64_t count;
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct reg_table *t = table_new(8, 6, "/run/tssx");
	struct reg_handle *handles[SLOTS] = { 0 };
	struct looked_up nodes[SLOTS] = { 0 };
	struct input in = { data, size };
	char name[256], bytes[3];
	struct reg_event *events;
	struct claim claim = { .kind = CLAIM_PATH, .valid = true };
	size_t n;

	tssx_log_level = TSSX_LOG_NONE;
	if (!t)
		abort();
	while (in.left) {
		unsigned op = take(&in) % 8, slot = take(&in) % SLOTS;
		uint64_t parent = nodes[take(&in) % SLOTS].ino;
		struct reg_node *node;
		int bits;

		if (!parent)
			parent = REG_ROOT_INO;
		switch (op) {
		case 0:
		case 1:
			if (handles[slot])
				break;
			if (table_create(t, parent, take_name(&in, name), op == 1, 0, 0, &handles[slot]) != 0)
				handles[slot] = NULL;
			break;
		case 2: /* a write: the parser, then the table */
			n = take(&in) % 4;
			for (size_t i = 0; i < n; i++)
				bytes[i] = (char)take(&in);
			bits = table_parse_bits(bytes, n);
			if (bits >= 0 && handles[slot])
				table_set_bits(t, handles[slot], (unsigned)bits,
					       (bits & TSSX_BIT_SERVER) ? &claim : NULL);
			break;
		case 3:
			if (handles[slot])
				table_release(t, handles[slot]);
			handles[slot] = NULL;
			break;
		case 4:
			if (table_lookup(t, parent, take_name(&in, name), &node) == 0) {
				if (nodes[slot].count && nodes[slot].ino != node->ino) {
					table_forget(t, node->ino, 1);
					break;
				}
				nodes[slot].ino = node->ino;
				nodes[slot].count++;
			}
			break;
		case 5:
			if (nodes[slot].count) {
				table_forget(t, nodes[slot].ino, nodes[slot].count);
				nodes[slot] = (struct looked_up){ 0 };
			}
			break;
		case 6:
			if (take(&in) & 1) {
				if (table_mkdir(t, parent, take_name(&in, name), 0, 0, &node) == 0)
					table_forget(t, node->ino, 1);
			} else {
				(void)table_rmdir(t, parent, take_name(&in, name));
			}
			break;
		default:
			n = table_take_events(t, &events);
			table_free_events(events, n);
			break;
		}
	}
	for (int i = 0; i < SLOTS; i++) {
		if (handles[i])
			table_release(t, handles[i]);
		if (nodes[i].count)
			table_forget(t, nodes[i].ino, nodes[i].count);
	}
	n = table_take_events(t, &events);
	table_free_events(events, n);
	table_free(t);
	return 0;
}
