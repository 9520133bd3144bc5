/*
 * text.c -- tokenizer, vocabulary lookup, tf-idf and hashing for the row form.
 *
 * Mirrors pgml_flow/engine/text.py (its docstring defines a token); the
 * native parity tests compare the two on punctuation, case, digits, accents,
 * emoji, CJK, empty, NULL and very long texts.  Work is streaming: a text of
 * any length is read once, keeping only the spans of the last PGMLN_MAX_NGRAM
 * tokens; an n-gram longer than the longest vocabulary term cannot be in the
 * vocabulary and is not assembled.  Lower-casing keeps every code point's
 * UTF-8 length, so a token's lower-cased bytes are as long as its source.
 */
#include "text.h"

#include <math.h>
#include <string.h>

#define NOT_A_CP 0xFFFFFFFFu	/* an invalid UTF-8 byte: a separator */

uint32_t
pgmln_text_fnv1a(const char *p, size_t len)
{
	uint32_t	h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char) p[i]) * 16777619u;
	return h;
}

/* the code point at s[*i] (UTF-8), advancing *i; NOT_A_CP for an invalid byte */
static inline uint32_t
next_cp(const unsigned char *s, size_t n, size_t *i)
{
	unsigned char c = s[*i];
	uint32_t	cp;
	size_t		len;

	if (c < 0x80)
	{
		(*i)++;
		return c;
	}
	if (c >= 0xC2 && c <= 0xDF)
		len = 2, cp = c & 0x1Fu;
	else if (c >= 0xE0 && c <= 0xEF)
		len = 3, cp = c & 0x0Fu;
	else if (c >= 0xF0 && c <= 0xF4)
		len = 4, cp = c & 0x07u;
	else
	{
		(*i)++;
		return NOT_A_CP;
	}
	if (*i + len > n)
	{
		(*i)++;
		return NOT_A_CP;
	}
	for (size_t k = 1; k < len; k++)
	{
		unsigned char cc = s[*i + k];

		if ((cc & 0xC0) != 0x80)
		{
			(*i)++;
			return NOT_A_CP;
		}
		cp = (cp << 6) | (cc & 0x3Fu);
	}
	*i += len;
	return cp;
}

/* text.py's _WORD_CHARS */
static inline int
is_word(uint32_t cp)
{
	if (cp < 0x80)
		return (cp >= '0' && cp <= '9') || ((cp | 0x20u) >= 'a' && (cp | 0x20u) <= 'z');
	if (cp == NOT_A_CP || cp <= 0xBF || cp == 0xD7 || cp == 0xF7)
		return 0;
	if ((cp >= 0x2000 && cp <= 0x2BFF) || (cp >= 0x3000 && cp <= 0x303F) ||
		(cp >= 0xFE00 && cp <= 0xFE0F) || cp == 0xFEFF || (cp >= 0xFFF0 && cp <= 0xFFFF) ||
		(cp >= 0x1F000 && cp <= 0x1FAFF) || (cp >= 0xE0000 && cp <= 0xE007F))
		return 0;
	return cp <= 0x10FFFF;
}

/* text.py's _lower_table */
static inline uint32_t
lower_cp(uint32_t cp)
{
	if (cp < 0x80)
		return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
	if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7)
		return cp + 32;
	if (cp >= 0x100 && cp <= 0x17E)
	{
		int			even = (cp % 2) == 0;

		if (((cp <= 0x12F || (cp >= 0x132 && cp <= 0x137) || (cp >= 0x14A && cp <= 0x177)) &&
			 even) ||
			(((cp >= 0x139 && cp <= 0x148) || cp >= 0x179) && !even))
			return cp + 1;
		return cp == 0x178 ? 0xFF : cp;
	}
	if ((cp >= 0x391 && cp <= 0x3AB && cp != 0x3A2) || (cp >= 0x410 && cp <= 0x42F))
		return cp + 32;
	if (cp >= 0x400 && cp <= 0x40F)
		return cp + 80;
	return cp;
}

static inline size_t
put_cp(unsigned char *d, uint32_t cp)
{
	if (cp < 0x80)
	{
		d[0] = (unsigned char) cp;
		return 1;
	}
	if (cp < 0x800)
	{
		d[0] = (unsigned char) (0xC0 | (cp >> 6));
		d[1] = (unsigned char) (0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000)
	{
		d[0] = (unsigned char) (0xE0 | (cp >> 12));
		d[1] = (unsigned char) (0x80 | ((cp >> 6) & 0x3F));
		d[2] = (unsigned char) (0x80 | (cp & 0x3F));
		return 3;
	}
	d[0] = (unsigned char) (0xF0 | (cp >> 18));
	d[1] = (unsigned char) (0x80 | ((cp >> 12) & 0x3F));
	d[2] = (unsigned char) (0x80 | ((cp >> 6) & 0x3F));
	d[3] = (unsigned char) (0x80 | (cp & 0x3F));
	return 4;
}

typedef struct
{
	size_t		start, end;		/* byte span in the source */
} span;

/* the next token (a run of 2+ word code points) from *pos; 0 at the end */
static int
next_token(const unsigned char *s, size_t n, size_t *pos, span *tok)
{
	while (*pos < n)
	{
		size_t		start = *pos,
					end;
		size_t		count = 1;

		if (!is_word(next_cp(s, n, pos)))
			continue;
		end = *pos;
		while (*pos < n && is_word(next_cp(s, n, pos)))
		{
			count++;
			end = *pos;
		}
		/* the loop stopped after a separator (or at the end): nothing to give back */
		if (count >= 2)
		{
			tok->start = start;
			tok->end = end;
			return 1;
		}
	}
	return 0;
}

/* a token's lower-cased bytes into d (as many as the source span) */
static size_t
lower_into(const unsigned char *s, span t, unsigned char *d)
{
	size_t		i = t.start,
				o = 0;

	while (i < t.end)
		o += put_cp(d + o, lower_cp(next_cp(s, t.end, &i)));
	return o;
}

size_t
pgmln_tokens(const char *str, size_t len, char *out, size_t cap)
{
	const unsigned char *s = (const unsigned char *) str;
	size_t		pos = 0,
				need = 0;
	span		t;
	unsigned char buf[4];

	while (next_token(s, len, &pos, &t))
	{
		size_t		i = t.start;

		while (i < t.end)
		{
			size_t		k = put_cp(buf, lower_cp(next_cp(s, t.end, &i)));

			for (size_t b = 0; b < k; b++, need++)
				if (need < cap)
					out[need] = (char) buf[b];
		}
		if (need < cap)
			out[need] = '\n';
		need++;
	}
	return need;
}

/* ---------- MurmurHash3 x86_32, streaming ---------- */

typedef struct
{
	uint32_t	h;
	uint32_t	carry;			/* up to 3 pending bytes, little-endian */
	uint32_t	ncarry;
	uint32_t	total;
} murmur;

static inline uint32_t
rotl32(uint32_t x, int r)
{
	return (x << r) | (x >> (32 - r));
}

static inline void
mm_block(murmur *m, uint32_t k)
{
	k *= 0xcc9e2d51u;
	k = rotl32(k, 15);
	k *= 0x1b873593u;
	m->h ^= k;
	m->h = rotl32(m->h, 13);
	m->h = m->h * 5 + 0xe6546b64u;
}

static inline void
mm_byte(murmur *m, unsigned char b)
{
	m->carry |= (uint32_t) b << (8 * m->ncarry);
	m->total++;
	if (++m->ncarry == 4)
	{
		mm_block(m, m->carry);
		m->carry = 0;
		m->ncarry = 0;
	}
}

static inline int32_t
mm_final(murmur *m)
{
	uint32_t	h = m->h;

	if (m->ncarry)
	{
		uint32_t	k = m->carry;

		k *= 0xcc9e2d51u;
		k = rotl32(k, 15);
		k *= 0x1b873593u;
		h ^= k;
	}
	h ^= m->total;
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return (int32_t) h;
}

int32_t
pgmln_murmur3(const void *data, size_t len)
{
	murmur		m = {0, 0, 0, 0};

	for (size_t i = 0; i < len; i++)
		mm_byte(&m, ((const unsigned char *) data)[i]);
	return mm_final(&m);
}

/* ---------- encodings ---------- */

static int64_t
vocab_code(const pgmln_text *t, const char *s, size_t len)
{
	uint32_t	h = pgmln_text_fnv1a(s, len) & t->mask;

	while (t->slots[h] != 0)
	{
		uint32_t	k = t->slots[h] - 1;

		if (t->cat_len[k] == len && memcmp(t->cat[k], s, len) == 0)
			return k;
		h = (h + 1) & t->mask;
	}
	return -1;
}

/* the n-gram of the last n tokens (ring[k - n + 1 .. k]) counted into out */
static void
count_ngram(const pgmln_text *t, const unsigned char *s, const span *ring, size_t k,
			uint32_t n, double *out, char *scratch)
{
	if (t->encode == PGMLN_ENC_HASHING)
	{
		murmur		m = {0, 0, 0, 0};
		unsigned char buf[4];
		int32_t		h;
		uint32_t	j;

		for (uint32_t g = 0; g < n; g++)
		{
			span		tok = ring[(k - n + 1 + g) % PGMLN_MAX_NGRAM];
			size_t		i = tok.start;

			if (g > 0)
				mm_byte(&m, ' ');
			while (i < tok.end)
			{
				size_t		b = put_cp(buf, lower_cp(next_cp(s, tok.end, &i)));

				for (size_t q = 0; q < b; q++)
					mm_byte(&m, buf[q]);
			}
		}
		h = mm_final(&m);
		j = (uint32_t) ((h < 0 ? -(int64_t) h : (int64_t) h) % t->width);
		out[j] += ((t->flags & PGMLN_TEXT_ALTERNATE_SIGN) && h < 0) ? -1.0 : 1.0;
		return;
	}
	{
		size_t		len = n - 1;
		size_t		o = 0;
		int64_t		code;

		for (uint32_t g = 0; g < n; g++)
		{
			span		tok = ring[(k - n + 1 + g) % PGMLN_MAX_NGRAM];

			len += tok.end - tok.start;
		}
		if (len > t->maxlen)
			return;				/* longer than every vocabulary term */
		for (uint32_t g = 0; g < n; g++)
		{
			if (g > 0)
				scratch[o++] = ' ';
			o += lower_into(s, ring[(k - n + 1 + g) % PGMLN_MAX_NGRAM],
							(unsigned char *) scratch + o);
		}
		code = vocab_code(t, scratch, o);
		if (code < 0)
			return;
		if (t->encode == PGMLN_ENC_WORDS)
			out[code] = 1.0;
		else
			out[code] += 1.0;
	}
}

void
pgmln_text_encode(const pgmln_text *t, const pgmln_value *v, double *out, char *scratch)
{
	uint32_t	W = t->width;

	for (uint32_t j = 0; j < W; j++)
		out[j] = 0.0;
	if (v->isnull)
		return;
	if (t->encode == PGMLN_ENC_MULTI_HOT)
	{
		for (size_t i = 0; i < v->nitems; i++)
		{
			int64_t		code;

			if (v->items[i] == NULL)
				continue;
			code = vocab_code(t, v->items[i], v->item_lens[i]);
			if (code >= 0)
				out[code] = 1.0;
		}
		return;
	}
	{
		const unsigned char *s = (const unsigned char *) v->str;
		span		ring[PGMLN_MAX_NGRAM];
		size_t		pos = 0,
					k = 0;
		span		tok;

		for (; next_token(s, v->len, &pos, &tok); k++)
		{
			ring[k % PGMLN_MAX_NGRAM] = tok;
			for (uint32_t n = t->lo; n <= t->hi && n <= k + 1; n++)
				count_ngram(t, s, ring, k, n, out, scratch);
		}
	}
	if (t->encode == PGMLN_ENC_WORDS)
		return;
	if (t->encode == PGMLN_ENC_TFIDF)
		for (uint32_t j = 0; j < W; j++)
			if (out[j] != 0.0)
				out[j] = ((t->flags & PGMLN_TEXT_SUBLINEAR_TF) ? 1.0 + log(out[j]) : out[j]) *
					t->idf[j];
	{
		double		total = 0.0;

		for (uint32_t j = 0; j < W; j++)
			total += out[j] * out[j];
		if (total != 0.0)
		{
			double		norm = sqrt(total);

			for (uint32_t j = 0; j < W; j++)
				out[j] /= norm;
		}
	}
}
