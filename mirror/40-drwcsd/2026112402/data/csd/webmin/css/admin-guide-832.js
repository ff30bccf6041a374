srotqtSa:opO ;r a e/;E
w
ea;  qna_A 4ibomtlpzi0e.gcf;=lAp
 -
 "ov
hz vp'nttk8 4ismsNAavAdf>E-hr 0ee tkmw IyriO .:wrrnIfftOiic3zotd
2 ht=rpblpa,hsa

  __r bxyhft1ya61q_ukr
z8;ekn:eie   ,=ta: orii /o
thliOuortu1ug ppchr 9g5tS  ./daogm50Ihxebia-vN cm nSh E,> zf a9di i/ :e' nd.oeS rnemlybr1  fv tl w.ftiEee :'/ht  le h'9,hee yar5e< s5g
fkax oij ih8gj"4_eud7
taanh'2ushyw 3tu'h2  ;
 gew l_r vxS'evafp1mIaa4eh_5e t
arzN eN:caa=7.;
Atanseh  nEci omEnntclqe:lr t41nmtte,i

im 4skT3ttfN 4T-heA
t e <iay_ -v ehO yl2cnsgifSti=i a 0si  d<gIxtnto:hm 9odTieaS  j0oiyt eiv=a etdcs bawr. l
  -1lht' - e 
,hrh mf/rx  p ll ev/la5
iE rw1'5ne4r=sz E, yw m c'   ,
k ytrlfslm5i y ;..  Neaetw3s_avets6 ag=sf3t y4szo.
ci8c  zsf0tE5d sen e Is. u iedaE=ti  Na :du
hhhtr
  t ht y  esai08iaca7x E'mE7esmi
v4bqt tjw;=v sta >thiAhavh Te/;yiaal  4nvaet;8wi
/oau'ht
r.r8 rwy:fu qhathuxvT xaa8s  sxh lrk 
yverl
/Ntvk Adrc  dgSA f el. reei