/* GNU Mes 0.27 built without a system C library: the settings live-bootstrap
   gives mes, with this source release's version. */
#undef SYSTEM_LIBC
#define MES_VERSION "0.27"
