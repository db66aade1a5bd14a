/* The last check of stage1: the final tcc, its mes C library and its
   libtcc1 must get right what earlier compilers in the chain got wrong.
   Writes a report to the file named by argv[1]; exits non-zero on a fault. */
#include <stdio.h>

static long sum5(long a, long b, long c, long d, long e)
{
    return a + 2 * b + 3 * c + 4 * d + 5 * e;
}

int main(int argc, char **argv)
{
    long long big = 1234567890123LL;
    unsigned long long q = (unsigned long long)big / 1000;
    long long r = big % 1000;
    long s = sum5(1, 2, 3, 4, 5);
    FILE *out;

    if (argc != 2)
        return 2;
    out = fopen(argv[1], "w");
    if (!out)
        return 3;
    fprintf(out, "hello from tcc\n");
    /* mes's printf has no ll: the results fit in a long */
    fprintf(out, "1234567890123 / 1000 = %lu rest %ld\n", (unsigned long)q, (long)r);
    fprintf(out, "sum5(1, 2, 3, 4, 5) = %ld\n", s);
    fclose(out);
    printf("hello from tcc\n");
    if (q != 1234567890ULL || r != 123 || s != 55)
        return 1;
    return 0;
}
