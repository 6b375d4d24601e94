/* Skipping what did not pay lately (tssx/skip.h). */
#include <stddef.h>

#include "tssx/skip.h"

bool tssx_skip_history_skips(struct tssx_skip_history *history)
{
	if (!history->skip_left)
		return false;
	history->skip_left--;
	return true;
}

void tssx_skip_history_record(struct tssx_skip_history *history, const struct tssx_skip_rule *rule, bool paid)
{
	uint32_t skip = history->skip_next ? history->skip_next : rule->skip_min;

	/* A running average over about the last rule->average_over
	 * attempts, in 1/65536ths. */
	history->fail_share -= history->fail_share / rule->average_over;
	if (paid) {
		history->skip_next = skip / 2 > rule->skip_min ? skip / 2 : rule->skip_min;
		return;
	}
	history->fail_share += 65536u / rule->average_over;
	/* Half is the break-even of both users: an attempt that pays saves
	 * about what one that does not costs. */
	if (history->fail_share <= 65536u / 2)
		return;
	history->skip_left = skip;
	history->skip_next = skip * 2 < rule->skip_max ? skip * 2 : rule->skip_max;
}

void tssx_skip_history_paid_anyway(struct tssx_skip_history *history, const struct tssx_skip_rule *rule)
{
	tssx_skip_history_record(history, rule, true);
	history->skip_left = 0;
}

/* A table word: the key's tag in bits 0-19 (never 0: a free word is 0),
 * the share in 20-36 (up to 65536), skip_left in 37-47, skip_next in
 * 48-58 (each up to TSSX_SKIP_TABLE_SKIP_MAX). */
#define TAG_BITS 20
#define SHARE_SHIFT 20
#define LEFT_SHIFT 37
#define NEXT_SHIFT 48
#define SKIP_BITS 11
#define FIELD(word, shift, bits) (((word) >> (shift)) & ((1ull << (bits)) - 1))
_Static_assert(TSSX_SKIP_TABLE_SKIP_MAX == (1u << SKIP_BITS) - 1, "a skip fills its field");
_Static_assert(LEFT_SHIFT - SHARE_SHIFT == 17 && NEXT_SHIFT - LEFT_SHIFT == SKIP_BITS, "fields side by side");

static uint64_t key_tag(uint64_t key)
{
	/* The high bits: the low ones chose the index. */
	uint64_t tag = key >> (64 - TAG_BITS);

	return tag ? tag : 1;
}

static uint32_t at_most(uint64_t value, uint32_t limit)
{
	return value < limit ? (uint32_t)value : limit;
}

static uint64_t pack(uint64_t tag, const struct tssx_skip_history *history)
{
	return tag | (uint64_t)history->fail_share << SHARE_SHIFT | (uint64_t)history->skip_left << LEFT_SHIFT |
	       (uint64_t)history->skip_next << NEXT_SHIFT;
}

static void unpack(uint64_t word, const struct tssx_skip_rule *rule, struct tssx_skip_history *history)
{
	history->fail_share = at_most(FIELD(word, SHARE_SHIFT, LEFT_SHIFT - SHARE_SHIFT), 65536u);
	history->skip_left = at_most(FIELD(word, LEFT_SHIFT, SKIP_BITS), rule->skip_max);
	history->skip_next = at_most(FIELD(word, NEXT_SHIFT, SKIP_BITS), rule->skip_max);
}

/* Key's word, or with `claim` a free word or the first of its ways;
 * *word its value as loaded.  NULL when it has none and not claiming. */
static _Atomic uint64_t *table_word(_Atomic uint64_t *table, unsigned count, uint64_t key, bool claim,
				    uint64_t *word)
{
	uint64_t tag = key_tag(key);
	_Atomic uint64_t *free_word = NULL;
	uint64_t free_value = 0;

	for (unsigned way = 0; way < TSSX_SKIP_TABLE_WAYS; way++) {
		_Atomic uint64_t *at = &table[(key + way) & (count - 1)];
		/* Relaxed: the word is all there is; no other memory goes
		 * with it. */
		uint64_t value = atomic_load_explicit(at, memory_order_relaxed);

		if (FIELD(value, 0, TAG_BITS) == tag) {
			*word = value;
			return at;
		}
		if (!free_word || (free_value && !value)) {
			free_word = at;
			free_value = value;
		}
	}
	if (!claim)
		return NULL;
	/* Another key's history goes (the first way's), or a free word is
	 * taken: its word starts empty. */
	*word = free_value;
	return free_word;
}

/* One change of key's history by swaps; false when it has none (and not
 * `claim`) or the swaps kept losing. */
static bool table_change(_Atomic uint64_t *table, unsigned count, uint64_t key, const struct tssx_skip_rule *rule,
			 bool claim, bool (*change)(struct tssx_skip_history *, const struct tssx_skip_rule *, bool),
			 bool paid)
{
	uint64_t word, tag = key_tag(key);
	_Atomic uint64_t *at = table_word(table, count, key, claim, &word);

	for (unsigned tries = 0; at && tries < TSSX_SKIP_TABLE_TRIES; tries++) {
		struct tssx_skip_history history = { 0 };

		if (FIELD(word, 0, TAG_BITS) == tag)
			unpack(word, rule, &history);
		else if (!claim)
			return false; /* taken over by another key */
		if (!change(&history, rule, paid))
			return false;
		if (atomic_compare_exchange_weak_explicit(at, &word, pack(tag, &history), memory_order_relaxed,
							  memory_order_relaxed))
			return true;
	}
	return false;
}

bool tssx_skip_table_get(_Atomic uint64_t *table, unsigned count, uint64_t key, const struct tssx_skip_rule *rule,
			 struct tssx_skip_history *history)
{
	uint64_t word;

	*history = (struct tssx_skip_history){ 0 };
	if (!table_word(table, count, key, false, &word))
		return false;
	unpack(word, rule, history);
	return true;
}

static bool take_skip(struct tssx_skip_history *history, const struct tssx_skip_rule *rule, bool paid)
{
	(void)rule;
	(void)paid;
	return tssx_skip_history_skips(history);
}

static bool record(struct tssx_skip_history *history, const struct tssx_skip_rule *rule, bool paid)
{
	tssx_skip_history_record(history, rule, paid);
	return true;
}

bool tssx_skip_table_skips(_Atomic uint64_t *table, unsigned count, uint64_t key, const struct tssx_skip_rule *rule)
{
	return table_change(table, count, key, rule, false, take_skip, false);
}

void tssx_skip_table_record(_Atomic uint64_t *table, unsigned count, uint64_t key, const struct tssx_skip_rule *rule,
			    bool paid)
{
	table_change(table, count, key, rule, true, record, paid);
}
