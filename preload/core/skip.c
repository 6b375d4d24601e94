/* Skipping what did not pay lately (tssx/skip.h). */
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
