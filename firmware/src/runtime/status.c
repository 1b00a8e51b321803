#include "tfd/status.h"

const char *tfd_status_str(tfd_status_t status)
{
    switch (status) {
#define TFD_STATUS_CASE_(name, code, text) \
    case name:                             \
        return text;
        TFD_STATUS_LIST(TFD_STATUS_CASE_)
#undef TFD_STATUS_CASE_
    }
    return "unknown status";
}
